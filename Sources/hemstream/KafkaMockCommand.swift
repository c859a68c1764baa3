import ArgumentParser

struct KafkaMockCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka-mock",
        abstract: "(not built yet)")

    func run() async throws {
        throw ValidationError("'kafka-mock' is not built yet")
    }
}

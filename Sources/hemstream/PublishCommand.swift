import ArgumentParser

struct PublishCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "(not built yet)")

    func run() async throws {
        throw ValidationError("'publish' is not built yet")
    }
}

import ArgumentParser

struct LoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "(not built yet)")

    func run() async throws {
        throw ValidationError("'load' is not built yet")
    }
}

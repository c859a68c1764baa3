import ArgumentParser

struct QueryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "(not built yet)")

    func run() async throws {
        throw ValidationError("'query' is not built yet")
    }
}

import ArgumentParser

struct TableCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "table",
        abstract: "(not built yet)")

    func run() async throws {
        throw ValidationError("'table' is not built yet")
    }
}

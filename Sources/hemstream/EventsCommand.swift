import ArgumentParser

struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "(not built yet)")

    func run() async throws {
        throw ValidationError("'events' is not built yet")
    }
}

import ArgumentParser

/// The one binary: loader, stream reader and publisher modes, plus table tooling.
@main
struct Hemstream: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hemstream",
        abstract: "Load the email-resolution export into DynamoDB and publish HEM change events to Kafka.",
        subcommands: [
            TableCommand.self,
            QueryCommand.self,
            LoadCommand.self,
            StreamCommand.self,
            PublishCommand.self,
            KafkaMockCommand.self,
            EventsCommand.self,
        ]
    )

    /// Fills closed standard descriptors before the runtime or a library opens anything.
    static func main() async {
        _ = StandardDescriptors.closedAtStart
        await main(nil)
    }
}

import AWSWire
import ArgumentParser
import Foundation
import Stream
import Table

struct TableCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "table",
        abstract: "Create, verify or restore the table (its definition is schemas/table.json).",
        subcommands: [Create.self, Verify.self, Restore.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create the table, its GSI and PITR; on an existing table, do only what is missing.",
            discussion: """
                Steps: create the table and wait until ACTIVE, add each GSI and poll its IndexStatus \
                (one timestamped line per poll) until ACTIVE, tag it, enable point-in-time recovery. \
                Re-running on a correct table changes nothing. A table whose keys, stream view or \
                index keys differ is left alone and the command exits 1 saying what differs.

                Example: hemstream table create --region eu-west-1
                """)

        @OptionGroup var aws: AWSOptions
        @OptionGroup var name: TableNameOption
        @OptionGroup var log: LogOptions
        @Option(help: "Seconds between status polls.") var pollInterval: Double = 5
        @Option(help: "Seconds to wait for the table or an index to become ACTIVE.") var timeout: Double = 3600
        @Flag(help: "Also create the stream reader's lease table (<table>-hemstream-leases, on-demand).")
        var leases = false
        @Option(help: "The lease table's name, with --leases.") var leaseTable: String?

        func run() async throws {
            log.bootstrap()
            let client = try aws.client()
            let manager = TableManager(
                client: client, definition: try TableDefinition.load(tableName: name.table),
                pollInterval: pollInterval, timeout: timeout, report: Console.line)
            try await manager.create()
            Console.line("table \(name.table) matches schemas/table.json")
            if leases {
                let leaseName = leaseTable ?? "\(name.table)-hemstream-leases"
                try await LeaseTable(client: client, name: leaseName).ensureExists(timeout: timeout)
                Console.line("lease table \(leaseName) is ACTIVE")
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a live table against schemas/table.json.",
            discussion: """
                Prints each difference on stdout. Exit 0 when the table matches, 3 when it differs \
                or is missing, 1 when it could not be checked.

                Example: hemstream table verify --table vector_emails_operational
                """)

        @OptionGroup var aws: AWSOptions
        @OptionGroup var name: TableNameOption
        @OptionGroup var log: LogOptions

        func run() async throws {
            log.bootstrap()
            let manager = TableManager(
                client: try aws.client(), definition: try TableDefinition.load(tableName: name.table),
                report: Console.line)
            let differences = try await manager.verify()
            for difference in differences { print(difference.description) }
            if !differences.isEmpty {
                Console.line("table \(name.table) differs from schemas/table.json in \(differences.count) ways")
                throw Exit.differs
            }
            Console.line("table \(name.table) matches schemas/table.json")
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Point-in-time restore of the table into a new table.",
            discussion: """
                --to takes a UTC time (2026-11-24T06:00:00Z) or 'latest'. A restored table has no \
                stream, tags or PITR of its own: run 'hemstream table verify --table TARGET' to see \
                what to re-enable before pointing anything at it.

                Example: hemstream table restore --to 2026-11-24T06:00:00Z --target vector_emails_restored
                """)

        @OptionGroup var aws: AWSOptions
        @OptionGroup var name: TableNameOption
        @OptionGroup var log: LogOptions
        @Option(help: "UTC time to restore to (ISO 8601 ending in Z), or 'latest'.") var to: String
        @Option(help: "Name of the new table.") var target: String
        @Flag(inversion: .prefixedNo, help: "Wait until the restored table is ACTIVE.") var wait = true
        @Option(help: "Seconds between status polls.") var pollInterval: Double = 10

        func validate() throws {
            if to != "latest" && Self.parseUTC(to) == nil {
                throw ValidationError("--to must be a UTC time like 2026-11-24T06:00:00Z, or 'latest'; got '\(to)'")
            }
            if target == name.table { throw ValidationError("--target must differ from --table") }
        }

        static func parseUTC(_ text: String) -> Date? {
            guard text.hasSuffix("Z") else { return nil }
            let f = ISO8601DateFormatter()
            if let d = f.date(from: text) { return d }
            f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            return f.date(from: text)
        }

        func run() async throws {
            log.bootstrap()
            let manager = TableManager(
                client: try aws.client(), definition: try TableDefinition.load(tableName: name.table),
                pollInterval: pollInterval, report: Console.line)
            try await manager.restore(to: to == "latest" ? nil : Self.parseUTC(to), target: target, wait: wait)
            Console.line("restored \(name.table) into \(target)")
        }
    }
}

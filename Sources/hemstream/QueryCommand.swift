import AWSWire
import Events
import ArgumentParser
import Foundation
import JSON
import Table

struct QueryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "Look up the HEMs of a VUP, or the VUP of a HEM; one JSON line per item.",
        discussion: """
            --vup queries the table (consistent read); --hem queries the hem-index GSI. Every page \
            is read. PII attributes (schemas/fields.json) print as "<redacted>" unless --reveal-pii.

            Examples:
              hemstream query --vup VUP-000123
              hemstream query --hem 0f343b0931126a20f133d67c2b018a3b
            """)

    @OptionGroup var aws: AWSOptions
    @OptionGroup var name: TableNameOption
    @OptionGroup var log: LogOptions
    @Option(help: "A VUP id (or an UNRESOLVED#xx sentinel): list its HEMs.") var vup: String?
    @Option(help: "A HEM: find its item(s) through hem-index.") var hem: String?
    @Flag(help: "Print PII attributes (email) in clear.") var revealPII = false

    func validate() throws {
        if (vup == nil) == (hem == nil) { throw ValidationError("give exactly one of --vup or --hem") }
        if let hem, hem.isEmpty { throw ValidationError("--hem must not be empty") }
        if let vup, vup.isEmpty { throw ValidationError("--vup must not be empty") }
    }

    func run() async throws {
        log.bootstrap()
        let client = try aws.client()
        let fields = try FieldClassification.load()
        var request: [String: JSON] = ["TableName": .string(name.table)]
        if let vup {
            request["KeyConditionExpression"] = "vup_id = :v"
            request["ExpressionAttributeValues"] = [":v": ["S": .string(vup)]]
            request["ConsistentRead"] = true
        } else if let hem {
            request["IndexName"] = "hem-index"
            request["KeyConditionExpression"] = "hem = :h"
            request["ExpressionAttributeValues"] = [":h": ["S": .string(hem.lowercased())]]
        }
        let output = FileHandle.standardOutput
        var count = 0
        repeat {
            let page = try await client.dynamoDB("Query", .object(request))
            var text = ""
            for item in page["Items"]?.arrayValue ?? [] {
                // Attributes not in schemas/fields.json count as PII.
                let pii = revealPII ? [] : Set((item.objectValue ?? [:]).keys.filter { fields.classOf($0) == .pii })
                text += ItemRendering.plain(item, redacting: pii).serialized() + "\n"
                count += 1
            }
            output.write(Data(text.utf8))
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        } while request["ExclusiveStartKey"] != nil
        Console.line("\(count) items")
    }
}

import Foundation

/// ~/.aws/credentials and ~/.aws/config (or AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE),
/// read for one profile: AWS_PROFILE, else "default". Config sections are `[profile x]`
/// (or `[default]`); credentials sections are `[x]`.
struct ProfileFiles: Sendable {
    var profile: String
    var credentialsSection: [String: String]?
    var configSection: [String: String]?

    static func load(environment: [String: String]) throws -> ProfileFiles {
        let explicit = nonEmpty(environment["AWS_PROFILE"])
        let profile = explicit ?? "default"
        let home = nonEmpty(environment["HOME"]) ?? NSHomeDirectory()
        func expand(_ path: String) -> String {
            path.hasPrefix("~/") ? home + path.dropFirst(1) : path
        }
        let credentialsPath = expand(nonEmpty(environment["AWS_SHARED_CREDENTIALS_FILE"]) ?? "~/.aws/credentials")
        let configPath = expand(nonEmpty(environment["AWS_CONFIG_FILE"]) ?? "~/.aws/config")
        let credentials = parseINI(at: credentialsPath)
        let config = parseINI(at: configPath)
        var files = ProfileFiles(profile: profile)
        files.credentialsSection = credentials?[profile]
        if let config {
            files.configSection = profile == "default" ? (config["default"] ?? config["profile default"]) : config["profile " + profile]
        }
        if explicit != nil && files.credentialsSection == nil && files.configSection == nil {
            throw AWSError.configuration(
                "AWS profile '\(profile)' (AWS_PROFILE) not found in \(credentialsPath) or \(configPath)")
        }
        return files
    }

    init(profile: String) { self.profile = profile }

    /// A key from the profile; credential keys prefer the credentials file, others the config file.
    func profileValue(_ key: String) -> String? {
        let first = key.hasPrefix("aws_") ? credentialsSection : configSection
        let second = key.hasPrefix("aws_") ? configSection : credentialsSection
        return nonEmpty(first?[key]) ?? nonEmpty(second?[key])
    }

    /// Sections by name (trimmed, inner whitespace collapsed), keys lowercased.
    static func parseINI(at path: String) -> [String: [String: String]]? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return parseINI(String(decoding: data, as: UTF8.self))
    }

    static func parseINI(_ text: String) -> [String: [String: String]] {
        var sections: [String: [String: String]] = [:]
        var current: String?
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") {
                guard let close = line.firstIndex(of: "]") else { current = nil; continue }
                let name = line[line.index(after: line.startIndex)..<close]
                    .split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
                current = name
                if sections[name] == nil { sections[name] = [:] }
                continue
            }
            // Indented lines continue a nested value (e.g. s3 = ...); not used here.
            if rawLine.first == " " || rawLine.first == "\t" { continue }
            guard let current, let eq = line.firstIndex(of: "=") else { continue }
            let key = line[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
            var value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            if let hash = value.range(of: " #") ?? value.range(of: " ;") { value = String(value[..<hash.lowerBound]).trimmingCharacters(in: .whitespaces) }
            sections[current]?[key] = value
        }
        return sections
    }
}

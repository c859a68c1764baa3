/// Why `ObservabilityServer` could not start or serve.
public struct ObservabilityServerError: Error, Sendable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        /// The host and port could not be bound: in use, not an address of this machine, or denied.
        case cannotListen
        /// `start()` or `run()` was called while another `start()` was binding, or after `run()` returned.
        case notStartable
    }

    public var code: Code
    public var description: String

    public init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
    }
}

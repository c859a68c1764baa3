import Foundation

/// Polls `condition` until it holds, for at most `timeout` seconds: tests wait on what they
/// need to be true, never for a guessed time. Throws, naming `what`, when time runs out.
public func waitUntil(
    _ what: String, timeout: TimeInterval, every interval: TimeInterval = 0.05, _ condition: () throws -> Bool
) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if try condition() { return }
        guard Date() < deadline else { throw TestSupportError("timed out after \(timeout) s waiting until \(what)") }
        usleep(useconds_t(interval * 1_000_000))
    }
}

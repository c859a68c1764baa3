/// Runs an async throwing expression and returns its error (or nil), for tests that assert on
/// the error itself rather than only that one was thrown.
public func captureError<T>(_ body: () async throws -> T) async -> Error? {
    do {
        _ = try await body()
        return nil
    } catch {
        return error
    }
}

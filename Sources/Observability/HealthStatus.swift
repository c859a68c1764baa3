/// What `/healthz` or `/readyz` answers: `ok` is 200 "ok", `unavailable` is 503 with the reason.
/// The reason is served to anyone who reaches the port: name the component, never a row's data.
public enum HealthStatus: Sendable, Equatable {
    case ok
    case unavailable(reason: String)
}

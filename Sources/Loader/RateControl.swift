import Foundation
import Synchronization

/// `--max-wcu`: a token bucket on write capacity units. A caller reserves what its call will
/// consume and sleeps off any debt, so the average rate stays at `rate` units per second with
/// bursts of at most one second's worth.
public final class WriteCapacityBucket: Sendable {
    public let rate: Double
    private let state: Mutex<(tokens: Double, last: UInt64)>

    public init(unitsPerSecond: Int) {
        rate = Double(max(1, unitsPerSecond))
        state = Mutex((tokens: rate, last: DispatchTime.now().uptimeNanoseconds))
    }

    /// Seconds the caller must wait before spending `units`; the units are reserved.
    public func reserve(_ units: Int) -> Double {
        state.withLock { s in
            let now = DispatchTime.now().uptimeNanoseconds
            s.tokens = min(rate, s.tokens + Double(now - s.last) / 1e9 * rate)
            s.last = now
            s.tokens -= Double(units)
            return s.tokens >= 0 ? 0 : -s.tokens / rate
        }
    }

    public func acquire(_ units: Int) async throws {
        let wait = reserve(units)
        if wait > 0 { try await Task.sleep(nanoseconds: UInt64(wait * 1e9)) }
    }
}

/// How many calls the loader keeps in flight: halved when DynamoDB throttles (at most once
/// per cooldown, since one throttling episode hits many calls at once), raised by one after
/// a round of calls without throttling (additive increase, multiplicative decrease).
public final class AdaptiveConcurrency: Sendable {
    public let maximum: Int
    private let state: Mutex<(limit: Double, lastDecrease: UInt64)>
    private let cooldownNanoseconds: UInt64

    public init(maximum: Int, cooldown: Double = 1.0) {
        self.maximum = max(1, maximum)
        state = Mutex((limit: Double(max(1, maximum)), lastDecrease: 0))
        cooldownNanoseconds = UInt64(cooldown * 1e9)
    }

    public var limit: Int { state.withLock { max(1, Int($0.limit)) } }

    public func throttled() {
        state.withLock { s in
            let now = DispatchTime.now().uptimeNanoseconds
            guard s.lastDecrease == 0 || now - s.lastDecrease >= cooldownNanoseconds else { return }
            s.lastDecrease = now
            s.limit = max(1, s.limit / 2)
        }
    }

    public func succeeded() {
        state.withLock { s in
            s.limit = min(Double(maximum), s.limit + 1 / max(1, s.limit))
        }
    }
}

/// Exponential backoff with full jitter: retry n waits random(0, min(cap, base * 2^(n-1))).
public struct Backoff: Sendable {
    public var base: Double
    public var cap: Double
    public init(base: Double = 0.05, cap: Double = 10) {
        self.base = base
        self.cap = cap
    }

    public func delay(retry: Int) -> Double {
        let ceiling = min(cap, base * Double(1 << min(max(retry - 1, 0), 30)))
        return ceiling <= 0 ? 0 : Double.random(in: 0...ceiling)
    }

    public func sleep(retry: Int) async throws {
        let d = delay(retry: retry)
        if d > 0 { try await Task.sleep(nanoseconds: UInt64(d * 1e9)) }
    }
}

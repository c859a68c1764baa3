import Synchronization

/// Retries as the AWS SDKs' standard mode does: throttling, 5xx, transient codes and
/// transport failures are retried with exponential backoff and full jitter, a bounded
/// number of attempts, and a shared retry quota so a failing service is not hammered.
public struct RetryPolicy: Sendable {
    /// Total attempts including the first (1 = never retry).
    public var maxAttempts: Int
    /// First backoff ceiling in seconds; attempt n waits random(0, min(cap, base * 2^n)).
    public var baseDelay: Double
    /// Backoff ceiling for throttling errors (the SDKs back off harder when throttled).
    public var throttlingBaseDelay: Double
    public var maxDelay: Double
    /// Retry quota: tokens in the bucket, cost of a retry, cost of a retry after a timeout.
    public var quotaCapacity: Int
    public var retryCost: Int
    public var timeoutRetryCost: Int

    public init(
        maxAttempts: Int = 3, baseDelay: Double = 0.1, throttlingBaseDelay: Double = 0.5, maxDelay: Double = 20,
        quotaCapacity: Int = 500, retryCost: Int = 5, timeoutRetryCost: Int = 10
    ) {
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.throttlingBaseDelay = throttlingBaseDelay
        self.maxDelay = maxDelay
        self.quotaCapacity = quotaCapacity
        self.retryCost = retryCost
        self.timeoutRetryCost = timeoutRetryCost
    }

    public static let standard = RetryPolicy()

    /// Policy with `maxAttempts` from AWS_MAX_ATTEMPTS when set.
    public static func fromEnvironment(_ environment: [String: String]) -> RetryPolicy {
        var policy = RetryPolicy.standard
        if let n = environment["AWS_MAX_ATTEMPTS"].flatMap(Int.init), n >= 1 { policy.maxAttempts = n }
        return policy
    }

    /// Full-jitter delay before retry number `retry` (1 for the first retry).
    func delay(retry: Int, throttled: Bool) -> Double {
        let base = throttled ? throttlingBaseDelay : baseDelay
        let ceiling = min(maxDelay, base * Double(1 << min(retry - 1, 30)))
        return ceiling <= 0 ? 0 : Double.random(in: 0...ceiling)
    }
}

/// The token bucket behind the retry quota: a retry takes tokens, a success gives back
/// what its retries took (or one token for a first-try success).
final class RetryQuota: Sendable {
    private let tokens: Mutex<Int>
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
        tokens = Mutex(capacity)
    }

    /// Takes `cost` tokens; false (and nothing taken) when the bucket holds fewer.
    func acquire(_ cost: Int) -> Bool {
        tokens.withLock { t in
            guard t >= cost else { return false }
            t -= cost
            return true
        }
    }

    func release(_ amount: Int) {
        tokens.withLock { t in t = min(capacity, t + amount) }
    }

    var available: Int { tokens.withLock { $0 } }
}

/// Request counters for reports: every HTTP attempt, every retry, every throttled answer.
public struct AWSClientMetrics: Sendable, Equatable {
    public var requests: Int
    public var retries: Int
    public var throttled: Int
    public init(requests: Int = 0, retries: Int = 0, throttled: Int = 0) {
        self.requests = requests
        self.retries = retries
        self.throttled = throttled
    }
}

import CoreMetrics
import Metrics
import Prometheus

/// Makes swift-prometheus the process's swift-metrics backend, so code records with `Counter`,
/// `Timer`, `Gauge` and `Recorder` and `ObservabilityServer` renders them at `/metrics`.
public enum MetricsBootstrap {
    /// Histogram bucket bounds, in seconds, for every `Timer` and aggregating `Recorder`: from a
    /// 1 ms local call to a minute-long stall (throttled batch, broker outage, lease handoff).
    public static let secondsBuckets: [Double] = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
    ]

    /// Bootstraps `MetricsSystem` with a `PrometheusMetricsFactory` on the first call and returns
    /// its registry; later calls return the same registry. swift-metrics can be bootstrapped only
    /// once per process, so no other code may call `MetricsSystem.bootstrap`.
    public static func prometheus() -> PrometheusCollectorRegistry {
        bootstrapped
    }

    // A global `let` is initialised once, thread-safely, on first use: that is the idempotence.
    private static let bootstrapped: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = secondsBuckets.map {
            .nanoseconds(Int64(($0 * 1_000_000_000).rounded()))
        }
        factory.defaultValueHistogramBuckets = secondsBuckets
        MetricsSystem.bootstrap(factory)
        return registry
    }()
}

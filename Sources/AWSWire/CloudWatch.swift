import Foundation

/// One CloudWatch data point.
public struct MetricDatum: Sendable {
    public var name: String
    public var value: Double
    /// CloudWatch unit, e.g. "Count", "Seconds", "Bytes", "Count/Second", "None".
    public var unit: String
    public var dimensions: [(String, String)]
    public var timestamp: Date?

    public init(name: String, value: Double, unit: String = "None", dimensions: [(String, String)] = [], timestamp: Date? = nil) {
        self.name = name
        self.value = value
        self.unit = unit
        self.dimensions = dimensions
        self.timestamp = timestamp
    }
}

extension AWSClient {
    /// CloudWatch PutMetricData (query protocol), in batches of up to 500 data points.
    public func cloudWatchPutMetricData(namespace: String, metrics: [MetricDatum]) async throws {
        var start = 0
        while start < metrics.count {
            let batch = metrics[start..<min(metrics.count, start + 500)]
            var parameters: [(String, String)] = [("Namespace", namespace)]
            for (i, datum) in batch.enumerated() {
                let p = "MetricData.member.\(i + 1)."
                parameters.append((p + "MetricName", datum.name))
                parameters.append((p + "Value", formatMetricValue(datum.value)))
                parameters.append((p + "Unit", datum.unit))
                if let timestamp = datum.timestamp {
                    parameters.append((p + "Timestamp", ISO8601DateFormatter().string(from: timestamp)))
                }
                for (j, dimension) in datum.dimensions.enumerated() {
                    parameters.append((p + "Dimensions.member.\(j + 1).Name", dimension.0))
                    parameters.append((p + "Dimensions.member.\(j + 1).Value", dimension.1))
                }
            }
            _ = try await query(.cloudWatch, action: "PutMetricData", version: "2010-08-01", parameters: parameters)
            start += 500
        }
    }
}

func formatMetricValue(_ value: Double) -> String {
    if value.rounded() == value && abs(value) < 1e15 { return String(Int64(value)) }
    return String(value)
}

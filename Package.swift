// swift-tools-version:6.0
import PackageDescription

// One executable, `hemstream`, over one module per concern. C stays at the edge:
// system-library targets for libcurl, zlib and librdkafka (found through pkg-config)
// and one thin C target for the variadic curl calls Swift cannot make.
let package = Package(
    name: "hemstream",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "hemstream", targets: ["hemstream"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // C edge
        .systemLibrary(
            name: "CCurl", pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(
            name: "CZlib", pkgConfig: "zlib",
            providers: [.apt(["libz-dev"])]),
        .systemLibrary(
            name: "CRdKafka", pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]),
        .target(name: "CCurlShim", dependencies: ["CCurl"]),

        // Domain modules
        .target(name: "JSON"),
        // Names the calling OS thread (for top -H, perf, /proc).
        .target(name: "ThreadNames"),
        .target(name: "Schemas"),
        .target(
            name: "AWSWire",
            dependencies: [
                "CCurl", "CCurlShim", "JSON", "ThreadNames",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(name: "Table", dependencies: ["AWSWire", "JSON", "Schemas"]),
        .target(name: "Export", dependencies: ["CZlib", "JSON", "AWSWire", "Schemas"]),
        .target(name: "Loader", dependencies: ["Export", "AWSWire", "JSON", "Schemas"]),
        .target(
            name: "Events",
            dependencies: [
                "JSON", "Schemas",
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        // librdkafka wrapped, and nothing else.
        .target(name: "Kafka", dependencies: ["CRdKafka", "ThreadNames"]),
        // Where events leave the process, for `publish` and `stream` alike: the PII guard, the
        // CloudEvents headers, keyed produce with a tag, delivery reports by tag, flush and close.
        .target(name: "Outlet", dependencies: ["Events", "Kafka"]),
        // The `publish` pipeline: NDJSON lines read, validated (Events), sent (Outlet), reported by line.
        .target(
            name: "Publish",
            dependencies: ["Events", "JSON", "Kafka", "Outlet", "ThreadNames"]),
        .target(
            name: "Stream",
            dependencies: [
                "AWSWire", "Events", "JSON", "Kafka", "Outlet", "Schemas",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]),
        // Prometheus /metrics, /healthz and /readyz for the stream daemon.
        .target(
            name: "Observability",
            dependencies: [
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "hemstream",
            dependencies: [
                "JSON", "AWSWire", "Table", "Export", "Loader", "Events", "Kafka", "Outlet", "Stream",
                "Publish", "Observability",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // jemalloc replaces glibc's malloc for the whole process (librdkafka and libcurl
            // too): stream ~14% and publish ~19% less CPU, load unchanged, as measured in README
            // "Memory allocator". Debian: libjemalloc-dev to build, libjemalloc2 to run.
            linkerSettings: [.linkedLibrary("jemalloc")]),

        // Test support: real local servers (moto_server), the built binary, topics read back.
        .target(name: "TestSupport", dependencies: ["JSON", "Kafka", "CRdKafka"]),

        .testTarget(name: "JSONTests", dependencies: ["JSON"]),
        .testTarget(name: "AWSWireTests", dependencies: ["AWSWire", "JSON", "TestSupport"]),
        .testTarget(name: "TableTests", dependencies: ["Table", "JSON"]),
        .testTarget(name: "ExportTests", dependencies: ["Export", "AWSWire", "TestSupport"]),
        .testTarget(
            name: "LoaderTests", dependencies: ["Loader", "Export", "AWSWire", "JSON", "Schemas", "TestSupport"]),
        .testTarget(name: "EventsTests", dependencies: ["Events", "Schemas", "JSON", "TestSupport"]),
        .testTarget(name: "TestSupportTests", dependencies: ["TestSupport", "JSON", "AWSWire"]),
        .testTarget(name: "KafkaTests", dependencies: ["Kafka", "Events", "JSON", "Publish", "TestSupport"]),
        .testTarget(name: "PublishTests", dependencies: ["Publish", "Kafka", "CRdKafka", "Events", "TestSupport"]),
        .testTarget(name: "OutletTests", dependencies: ["Outlet", "Events", "Kafka", "TestSupport"]),
        .testTarget(name: "StreamTests", dependencies: ["Stream", "Events", "Outlet", "Kafka", "JSON", "TestSupport"]),
        .testTarget(
            name: "ObservabilityTests",
            dependencies: [
                "Observability", "TestSupport",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["hemstream", "TestSupport", "JSON", "AWSWire"]),
    ]
)

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
        .target(name: "Schemas"),
        .target(
            name: "AWSWire",
            dependencies: [
                "CCurl", "CCurlShim", "JSON",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(name: "Table", dependencies: ["AWSWire", "JSON", "Schemas"]),
        .target(name: "Export", dependencies: ["CZlib", "JSON", "AWSWire"]),
        .target(
            name: "Loader",
            dependencies: [
                "Export", "AWSWire", "Table", "JSON",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "Events",
            dependencies: [
                "JSON", "Schemas",
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .target(
            name: "Kafka",
            dependencies: [
                "CRdKafka", "JSON",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "Stream",
            dependencies: [
                "AWSWire", "Events", "JSON", "Kafka",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]),
        .executableTarget(
            name: "hemstream",
            dependencies: [
                "JSON", "AWSWire", "Table", "Export", "Loader", "Events", "Kafka", "Schemas", "Stream",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),

        // Test support: real local servers (moto_server) and the built binary.
        .target(name: "TestSupport", dependencies: ["JSON"]),

        .testTarget(name: "JSONTests", dependencies: ["JSON"]),
        .testTarget(name: "AWSWireTests", dependencies: ["AWSWire", "JSON", "TestSupport"]),
        .testTarget(name: "TableTests", dependencies: ["Table", "Schemas", "JSON", "TestSupport"]),
        .testTarget(name: "ExportTests", dependencies: ["Export", "AWSWire", "JSON", "TestSupport"]),
        .testTarget(name: "LoaderTests", dependencies: ["Loader", "Export", "AWSWire", "JSON", "TestSupport"]),
        .testTarget(name: "EventsTests", dependencies: ["Events", "Schemas", "JSON", "TestSupport"]),
        .testTarget(name: "TestSupportTests", dependencies: ["TestSupport", "JSON", "AWSWire"]),
        .testTarget(name: "KafkaTests", dependencies: ["Kafka", "CRdKafka", "Events", "JSON", "TestSupport"]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["hemstream", "TestSupport", "JSON", "AWSWire"]),
    ]
)

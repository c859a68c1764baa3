import TestSupport
import XCTest

/// The `hemstream` binary runs on jemalloc (linked, not preloaded): README "Memory allocator"
/// measures what it saves (stream and publish CPU) and costs (a few MB of RSS in the stream reader).
final class AllocatorTests: XCTestCase {
    /// The dynamic linker's own account of where `malloc` resolves, for glibc itself and for
    /// librdkafka, whose per-message allocations are the ones that matter most: jemalloc must
    /// win for both, which it does only while it is linked and comes before libc.
    func testMallocOfLibcAndLibrdkafka_resolvesToJemalloc() throws {
        let result = try Hemstream.run(["--help"], environment: ["LD_DEBUG": "bindings"])
        XCTAssertEqual(result.exitCode, 0)
        let bindings = result.stderr.split(separator: "\n").filter { $0.contains("normal symbol `malloc'") }
        for library in ["/libc.so.6 ", "/librdkafka.so.1 "] {
            let line = try XCTUnwrap(
                bindings.first { $0.contains("binding file") && $0.contains(library) },
                "no malloc binding reported for \(library)")
            let target = try XCTUnwrap(line.components(separatedBy: "] to ").last, String(line))
            XCTAssertTrue(target.contains("/libjemalloc.so.2 "), String(line))
        }
    }
}

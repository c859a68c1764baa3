import Foundation

/// Names the calling OS thread (at most 15 bytes are kept), so `top -H`, perf and
/// /proc/PID/task tell hemstream's threads apart. Through /proc: Foundation's `Thread.name`
/// does not reach the OS thread on Linux, and glibc's pthread_setname_np is not visible to Swift.
public func nameCurrentThread(_ name: String) {
    try? name.write(toFile: "/proc/thread-self/comm", atomically: false, encoding: .utf8)
}

import Synchronization

/// A request to stop early, set from a signal handler and read by the load loop between chunks.
public final class StopRequest: Sendable {
    private let flag = Atomic<Bool>(false)

    public init() {}

    public var isRequested: Bool { flag.load(ordering: .acquiring) }

    public func request() { flag.store(true, ordering: .releasing) }
}

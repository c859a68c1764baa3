#if canImport(Glibc)
import Glibc
#endif

/// Standard input, output and error as the process was started with them. One that was closed
/// (`>&-`, a supervisor that closes them) is opened on /dev/null before anything else opens a
/// descriptor: else the first socket, epoll or file the process opens takes its number, and log
/// lines or `--sink stdout`'s events are written into it (an AWS connection, a rejects file).
enum StandardDescriptors {
    /// The standard descriptors that were closed at start (now /dev/null). First use fills them.
    static let closedAtStart: [Int32] = (0...2).filter { fd in
        guard fcntl(fd, F_GETFD) == -1, errno == EBADF else { return false }
        // The lowest free number: `fd` itself, the ones below it being open by now.
        return open("/dev/null", O_RDWR) == fd
    }

    /// Throws when standard output was closed at start: a mode whose output is on stdout has
    /// nowhere to write (`what` names the output, for the message).
    static func requireStandardOutput(for what: String) throws(StandardOutputClosed) {
        if closedAtStart.contains(STDOUT_FILENO) { throw StandardOutputClosed(what: what) }
    }
}

/// Standard output was closed when the process started.
struct StandardOutputClosed: Error, CustomStringConvertible {
    let what: String
    var description: String { "standard output is closed: \(what) would be written nowhere (give the process a stdout)" }
}

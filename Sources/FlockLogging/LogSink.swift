import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where log lines go: a file descriptor (standard output or standard error), written one whole line per
/// `write(2)` under a lock, so that lines of concurrent tasks never interleave and a line is on its way as soon
/// as it is logged (nothing waits in a buffer when the process is killed).
public final class LogSink: Sendable {
    /// The process's standard output.
    public static let standardOutput = LogSink(fileDescriptor: 1)
    /// The process's standard error.
    public static let standardError = LogSink(fileDescriptor: 2)

    /// The file descriptor written to.
    public let fileDescriptor: Int32
    private let lock = Mutex(())

    /// A sink writing to `fileDescriptor`, which stays open for the life of the process.
    public init(fileDescriptor: Int32) { self.fileDescriptor = fileDescriptor }

    /// Writes `line` and a newline.
    public func write(line: String) {
        var bytes = Array(line.utf8)
        bytes.append(UInt8(ascii: "\n"))
        lock.withLock { _ in
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { systemWrite(fileDescriptor, $0.baseAddress, $0.count) }
                if written < 0 {
                    if errno == EINTR { continue }
                    return  // a closed or full output loses the line; logging never stops the process
                }
                offset += written
            }
        }
    }
}

#if canImport(Glibc)
private let systemWrite = Glibc.write
#elseif canImport(Darwin)
private let systemWrite = Darwin.write
#endif

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Lines on standard error: progress and error messages, kept apart from the results on standard output.
public enum StandardError {
    /// Writes `text` and a newline to standard error, unbuffered.
    public static func line(_ text: String) {
        var bytes = Array((text + "\n").utf8)
        bytes.withUnsafeMutableBytes { buffer in
            var written = 0
            while written < buffer.count {
                let n = write(2, buffer.baseAddress! + written, buffer.count - written)
                if n > 0 {
                    written += n
                } else if n < 0, errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }
    }
}

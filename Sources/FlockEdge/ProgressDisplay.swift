import FlockCore
import Foundation

/// Progress on standard error: a redrawn bar when standard error is a terminal, nothing per batch
/// otherwise (callers print one plain line per epoch instead).
public final class ProgressDisplay: @unchecked Sendable {
    // @unchecked: `lock` guards `lastDrawn`; callbacks may arrive from the training thread.
    private let lock = NSLock()
    private var lastDrawn = -1
    /// True when standard error is a terminal.
    public let isTerminal: Bool

    /// Creates a display; detects whether standard error is a terminal.
    public init() { isTerminal = isatty(2) != 0 }

    /// Redraws the bar for `done` of `total` rows in `epoch` of `epochs`.
    public func update(epoch: Int, of epochs: Int, done: Int, total: Int) {
        guard isTerminal, total > 0 else { return }
        let percent = done * 100 / total
        lock.withLock {
            guard percent != lastDrawn else { return }
            lastDrawn = percent
            let width = 30
            let filled = width * done / total
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
            Self.write("\r  epoch \(epoch)/\(epochs) [\(bar)] \(percent)%")
        }
    }

    /// Clears the bar so that a normal line can be printed.
    public func clear() {
        guard isTerminal else { return }
        lock.withLock {
            lastDrawn = -1
            Self.write("\r\u{1B}[K")
        }
    }

    /// Writes a line to standard error.
    public static func line(_ text: String) { StandardError.line(text) }

    private static func write(_ text: String) {
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { Foundation.write(2, $0.baseAddress, $0.count) }
    }
}

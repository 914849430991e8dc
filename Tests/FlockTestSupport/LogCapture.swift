import Logging
import Synchronization

/// A logger whose events a test reads back: level, message and metadata of each, in order.
public final class LogCapture: Sendable {
    /// One logged event.
    public struct Event: Sendable {
        /// Its level.
        public let level: Logger.Level
        /// Its message.
        public let message: String
        /// The logger's and the event's metadata.
        public let metadata: Logger.Metadata
    }

    private let events = Mutex<[Event]>([])

    /// An empty capture.
    public init() {}

    /// A logger at `level` that records into this capture.
    public func logger(level: Logger.Level = .trace) -> Logger {
        var logger = Logger(label: "test", factory: { _ in Handler(capture: self) })
        logger.logLevel = level
        return logger
    }

    /// Everything logged so far.
    public var all: [Event] { events.withLock { $0 } }

    /// A logger that drops everything, for tests that do not read the log.
    public static let silent = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    fileprivate func record(_ event: Event) { events.withLock { $0.append(event) } }

    private struct Handler: LogHandler {
        let capture: LogCapture
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            capture.record(Event(level: event.level, message: event.message.description, metadata: metadata.merging(event.metadata ?? [:]) { $1 }))
        }
    }
}

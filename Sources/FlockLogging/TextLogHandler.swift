import Logging

/// Writes one line per event, as a person reads it: the message alone at `info` and `notice`, prefixed by the
/// level otherwise (`warning: …`, `error: …`, `debug: …`), and by the edge's id (`edge-7: …`) when the event
/// names one and the handler logs at `debug` or below (``LogPrivacy``). Other metadata are left to the JSON
/// format: the messages themselves say which round they are about.
public struct TextLogHandler: LogHandler {
    /// The logger's label (not shown in text).
    public let label: String
    /// The most verbose level written.
    public var logLevel: Logger.Level
    /// Metadata every event of this logger carries.
    public var metadata: Logger.Metadata = [:]
    /// Contextual metadata added at each event.
    public var metadataProvider: Logger.MetadataProvider?
    private let sink: LogSink
    /// Whether each line starts with its syslog priority (`<4>` for a warning), which the systemd journal takes
    /// off and keeps as the line's priority (`journalctl -p warning`).
    private let journalPriority: Bool

    /// A handler writing to `sink` events at `level` and above; with `journalPriority`, each line starts with its
    /// syslog priority for the systemd journal.
    public init(label: String, level: Logger.Level, sink: LogSink, journalPriority: Bool = false) {
        self.label = label
        logLevel = level
        self.sink = sink
        self.journalPriority = journalPriority
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        sink.write(line: line(for: event))
    }

    /// The line written for `event`.
    func line(for event: LogEvent) -> String {
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { $1 } }
        if let own = event.metadata { all.merge(own) { $1 } }
        var text = journalPriority ? "<\(Self.syslogPriority(event.level))>" : ""
        text += Self.prefix(event.level)
        if LogPrivacy.showsEdgeIds(at: logLevel), let edge = all[LogPrivacy.edgeKey] { text += "\(edge): " }
        return text + LogPrivacy.redacted(event.message.description, all, at: logLevel)
    }

    private static func syslogPriority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    private static func prefix(_ level: Logger.Level) -> String {
        switch level {
        case .info, .notice: return ""
        case .trace: return "trace: "
        case .debug: return "debug: "
        case .warning: return "warning: "
        case .error: return "error: "
        case .critical: return "critical: "
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging

/// Sets up swift-log once per process for a long-running command (`serve`, `simulate`, `flock-edge run`).
public enum LoggingSetup {
    /// Routes every `Logger` of the process to `sink` in `format`, writing events at `level` and above.
    ///
    /// swift-log allows one bootstrap per process; call this once, from the command's `run()`, before any logger
    /// is made. Text lines written straight to the systemd journal (a service's standard output) start with their
    /// syslog priority, so that `journalctl -p warning` shows warnings and errors.
    public static func bootstrap(level: Logger.Level, format: LogFormat, sink: LogSink = .standardOutput) {
        let journal = isJournalStream(sink.fileDescriptor)
        LoggingSystem.bootstrap { label in handler(label: label, level: level, format: format, sink: sink, journal: journal) }
    }

    /// A handler for `label` in `format`.
    public static func handler(label: String, level: Logger.Level, format: LogFormat, sink: LogSink, journal: Bool = false) -> any LogHandler {
        switch format {
        case .text: return TextLogHandler(label: label, level: level, sink: sink, journalPriority: journal)
        case .json: return JSONLogHandler(label: label, level: level, sink: sink)
        }
    }

    /// Whether `fileDescriptor` is the stream systemd connected to the journal (`JOURNAL_STREAM=DEVICE:INODE`).
    static func isJournalStream(_ fileDescriptor: Int32) -> Bool {
        guard let variable = getenv("JOURNAL_STREAM") else { return false }
        let parts = String(cString: variable).split(separator: ":")
        var status = stat()
        guard parts.count == 2, fstat(fileDescriptor, &status) == 0 else { return false }
        return String(status.st_dev) == parts[0] && String(status.st_ino) == parts[1]
    }
}

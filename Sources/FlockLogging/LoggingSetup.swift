import Logging

/// Sets up swift-log once per process for a long-running command (`serve`, `simulate`, `flock-edge run`).
public enum LoggingSetup {
    /// Routes every `Logger` of the process to `sink` in `format`, writing events at `level` and above.
    ///
    /// swift-log allows one bootstrap per process; call this once, from the command's `run()`, before any logger
    /// is made.
    public static func bootstrap(level: Logger.Level, format: LogFormat, sink: LogSink = .standardOutput) {
        LoggingSystem.bootstrap { label in handler(label: label, level: level, format: format, sink: sink) }
    }

    /// A handler for `label` in `format`.
    public static func handler(label: String, level: Logger.Level, format: LogFormat, sink: LogSink) -> any LogHandler {
        switch format {
        case .text: return TextLogHandler(label: label, level: level, sink: sink)
        case .json: return JSONLogHandler(label: label, level: level, sink: sink)
        }
    }
}

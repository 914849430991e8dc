import ArgumentParser
import FlockLogging
import Logging

/// `--log-level` and `--log-format` of the long-running commands (`serve`, `simulate`).
struct LogOptions: ParsableArguments {
    @Option(
        name: .customLong("log-level"),
        help: ArgumentHelp(
            "The least severe events logged; edge ids appear only at debug and trace.", valueName: "LEVEL"))
    var level: Logger.Level = .info

    @Option(
        name: .customLong("log-format"),
        help: ArgumentHelp("text: one line per event; json: one JSON object per line (time, level, label, message, metadata).", valueName: "FORMAT"))
    var format: LogFormat = .text

    /// Routes the process's logs to `sink` at this level and format (once per process), and returns a logger.
    func bootstrap(label: String, sink: LogSink = .standardOutput) -> Logger {
        LoggingSetup.bootstrap(level: level, format: format, sink: sink)
        return Logger(label: label)
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

extension LogFormat: ExpressibleByArgument {}

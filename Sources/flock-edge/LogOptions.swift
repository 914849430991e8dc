import ArgumentParser
import FlockLogging
import Logging

/// `--log-level` and `--log-format` of `flock-edge run`.
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

    /// Routes the process's logs to `sink` at this level (or `minimum`, when less verbose) and format (once per
    /// process), and returns a logger.
    func bootstrap(label: String, atLeast minimum: Logger.Level? = nil, sink: LogSink = .standardOutput) -> Logger {
        LoggingSetup.bootstrap(level: max(level, minimum ?? level), format: format, sink: sink)
        return Logger(label: label)
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

extension LogFormat: ExpressibleByArgument {}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging

/// Writes one JSON object per line, for log collectors:
///
/// ```json
/// {"time":"2026-05-01T12:00:00.123Z","level":"info","label":"flock.server","message":"round 3: …","metadata":{"round":3}}
/// ```
///
/// `time` is UTC with milliseconds; `metadata` holds the logger's metadata, the contextual metadata and the
/// event's own (the event's win), integers and finite floating-point values as JSON numbers, everything else as
/// strings, arrays and objects. Edge ids are shown only while the handler logs at `debug` or below
/// (``LogPrivacy``).
public struct JSONLogHandler: LogHandler {
    /// The logger's label.
    public let label: String
    /// The most verbose level written.
    public var logLevel: Logger.Level
    /// Metadata every event of this logger carries.
    public var metadata: Logger.Metadata = [:]
    /// Contextual metadata added at each event.
    public var metadataProvider: Logger.MetadataProvider?
    private let sink: LogSink

    /// A handler writing to `sink` events at `level` and above.
    public init(label: String, level: Logger.Level, sink: LogSink) {
        self.label = label
        logLevel = level
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        sink.write(line: line(for: event, at: Self.now()))
    }

    /// The line written for `event` logged at `time` (an ISO 8601 timestamp).
    func line(for event: LogEvent, at time: String) -> String {
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { $1 } }
        if let own = event.metadata { all.merge(own) { $1 } }
        let message = LogPrivacy.redacted(event.message.description, all, at: logLevel)
        all = LogPrivacy.visible(all, at: logLevel)
        var out = "{\"time\":\"\(time)\",\"level\":\"\(event.level.rawValue)\",\"label\":"
        Self.appendString(label, to: &out)
        out += ",\"message\":"
        Self.appendString(message, to: &out)
        out += ",\"metadata\":"
        Self.append(.dictionary(all), to: &out)
        out += "}"
        return out
    }

    private static func append(_ value: Logger.MetadataValue, to out: inout String) {
        switch value {
        case .string(let text):
            appendString(text, to: &out)
        case .stringConvertible(let convertible):
            if convertible is any BinaryInteger {
                out += convertible.description
            } else if let number = convertible as? any BinaryFloatingPoint, Double(number).isFinite {
                out += convertible.description
            } else {
                appendString(convertible.description, to: &out)
            }
        case .array(let values):
            out += "["
            for (i, element) in values.enumerated() {
                if i > 0 { out += "," }
                append(element, to: &out)
            }
            out += "]"
        case .dictionary(let entries):
            out += "{"
            for (i, key) in entries.keys.sorted().enumerated() {
                if i > 0 { out += "," }
                appendString(key, to: &out)
                out += ":"
                append(entries[key]!, to: &out)
            }
            out += "}"
        }
    }

    /// Appends `text` as a JSON string: quotes, backslashes and control characters escaped.
    static func appendString(_ text: String, to out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }

    /// The time now, UTC, as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    static func now() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var seconds = spec.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(spec.tv_nsec / 1_000_000), 3))Z"
    }
}

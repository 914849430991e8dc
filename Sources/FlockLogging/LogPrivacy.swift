import Logging

/// What the Flock log handlers keep out of a log line.
///
/// Weights, updates, keys, tokens and raw rows are never given to a logger at all. Edge ids are: they go in
/// the ``edgeKey`` metadata (never in a message), and a handler shows them only while it logs at `debug` or
/// `trace`, so that a log kept at the default `info` level names no device.
public enum LogPrivacy {
    /// The metadata key of an edge id.
    public static let edgeKey = "edge"

    /// Whether a handler logging at `level` shows edge ids.
    public static func showsEdgeIds(at level: Logger.Level) -> Bool { level <= .debug }

    /// `message` with the edge ids of `metadata` replaced by `[edge]` where they stand as whole words, for a handler
    /// logging at `level` that does not show them: a safety net for a message that quotes a text naming the edge
    /// (an error from the server, say).
    static func redacted(_ message: String, _ metadata: Logger.Metadata, at level: Logger.Level) -> String {
        guard !showsEdgeIds(at: level), let value = metadata[edgeKey] else { return message }
        var text = message
        for id in ids(in: value) where !id.isEmpty { text = replacingWord(id, in: text) }
        return text
    }

    private static func ids(in value: Logger.MetadataValue) -> [String] {
        switch value {
        case .string(let id): return [id]
        case .stringConvertible(let id): return [id.description]
        case .array(let values): return values.flatMap(ids(in:))
        case .dictionary: return []
        }
    }

    /// `text` with every occurrence of `word` not adjacent to another id character (A-Z a-z 0-9 . _ -) or a slash
    /// replaced: a path that holds the id (a state folder named after the edge, say) is the operator's own and stays.
    private static func replacingWord(_ word: String, in text: String) -> String {
        let source = Array(text.utf8)
        let pattern = Array(word.utf8)
        guard source.count >= pattern.count else { return text }
        func isIdByte(_ b: UInt8) -> Bool {
            (48...57).contains(b) || (65...90).contains(b) || (97...122).contains(b) || b == 46 || b == 95 || b == 45 || b == 47
        }
        var out = [UInt8]()
        out.reserveCapacity(source.count)
        var i = 0
        while i < source.count {
            if i + pattern.count <= source.count, source[i..<(i + pattern.count)].elementsEqual(pattern),
               i == 0 || !isIdByte(source[i - 1]), i + pattern.count == source.count || !isIdByte(source[i + pattern.count]) {
                out.append(contentsOf: Array("[edge]".utf8))
                i += pattern.count
            } else {
                out.append(source[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `metadata` without what a handler logging at `level` must not show.
    static func visible(_ metadata: Logger.Metadata, at level: Logger.Level) -> Logger.Metadata {
        guard !showsEdgeIds(at: level), metadata[edgeKey] != nil else { return metadata }
        var shown = metadata
        shown[edgeKey] = nil
        return shown
    }
}

extension Logger {
    /// A logger that drops everything (for code run in-process many times over, such as simulated edges).
    public static func disabled(label: String) -> Logger {
        Logger(label: label, factory: { _ in SwiftLogNoOpLogHandler() })
    }
}

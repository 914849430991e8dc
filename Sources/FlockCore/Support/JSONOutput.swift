import Foundation

/// Stable JSON for `--json` output: sorted keys, one object per line, non-finite numbers as the strings "nan",
/// "inf", "-inf".
///
/// Both binaries print through this, so scripts read their output the same way.
public enum JSONOutput {
    /// Encodes a value as one line of JSON.
    public static func line(_ value: some Encodable) -> String {
        String(decoding: data(value), as: UTF8.self)
    }

    /// Encodes a value as JSON bytes (one line, sorted keys).
    public static func data(_ value: some Encodable) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf",
            negativeInfinity: "-inf",
            nan: "nan"
        )
        return (try? encoder.encode(value)) ?? Data("{}".utf8)
    }
}

import Foundation

/// Stable JSON for `--json` output: sorted keys, one object per line, non-finite numbers as the strings "nan", "inf", "-inf".
public enum JSONOutput {
    /// Encodes a value as one line of JSON.
    public static func line(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        guard let data = try? encoder.encode(value) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}

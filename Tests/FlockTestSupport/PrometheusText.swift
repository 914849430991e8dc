/// The samples of a Prometheus text exposition (format 0.0.4), for tests that read a server's metrics.
public struct PrometheusText: Sendable {
    /// One sample line: `name{label="value",...} number`.
    public struct Sample: Sendable, Equatable {
        public var name: String
        public var labels: [String: String]
        public var value: Double
    }

    /// Every sample, in the order of the text.
    public let all: [Sample]
    /// The text as read.
    public let text: String

    /// Parses `bytes` (UTF-8); comment lines and lines that are not samples are skipped.
    public init(_ bytes: [UInt8]) { self.init(String(decoding: bytes, as: UTF8.self)) }

    /// Parses `text`.
    public init(_ text: String) {
        self.text = text
        all = text.split(separator: "\n").compactMap { Self.sample(String($0)) }
    }

    /// The samples named `name` whose labels include `labels`.
    public func samples(_ name: String, _ labels: [String: String] = [:]) -> [Sample] {
        all.filter { sample in sample.name == name && labels.allSatisfy { key, value in sample.labels[key] == value } }
    }

    /// The value of the one sample named `name` with exactly `labels`; nil when there is none.
    public func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        all.first { $0.name == name && $0.labels == labels }?.value
    }

    /// The sum of the samples named `name` whose labels include `labels`.
    public func sum(_ name: String, _ labels: [String: String] = [:]) -> Double {
        samples(name, labels).reduce(0) { $0 + $1.value }
    }

    private static func sample(_ line: String) -> Sample? {
        guard !line.hasPrefix("#"), let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
            return nil
        }
        let series = line[..<space]
        guard let open = series.firstIndex(of: "{") else { return Sample(name: String(series), labels: [:], value: value) }
        var labels = [String: String]()
        var rest = series[series.index(after: open)...]
        while let equals = rest.firstIndex(of: "=") {
            let key = rest[..<equals].trimmingPrefix(",")
            var index = rest.index(equals, offsetBy: 2)  // past ="
            var text = ""
            while index < rest.endIndex, rest[index] != "\"" {
                if rest[index] == "\\", rest.index(after: index) < rest.endIndex {
                    index = rest.index(after: index)
                    text.append(rest[index] == "n" ? "\n" : rest[index])
                } else {
                    text.append(rest[index])
                }
                index = rest.index(after: index)
            }
            labels[String(key)] = text
            rest = index < rest.endIndex ? rest[rest.index(after: index)...] : rest[rest.endIndex...]
        }
        return Sample(name: String(series[..<open]), labels: labels, value: value)
    }
}

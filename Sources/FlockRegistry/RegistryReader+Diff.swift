import FlockCore
import Foundation

/// How two versions differ: their recorded fields side by side, and their weights.
public struct VersionDiff: Sendable, Codable, Equatable {
    /// One field that differs. In JSON, `first` and `second` are numbers for numeric fields (null where a
    /// version has no value) and strings for text fields and tags.
    public struct Field: Sendable, Codable, Equatable {
        /// The field's name, as `registry query` knows it.
        public var name: String
        /// Its value in the first version, as the table shows it (`-` for none).
        public var first: String
        /// Its value in the second.
        public var second: String
        /// For a numeric field, the first version's value at full precision (nil for none).
        public var firstNumber: Double?
        /// For a numeric field, the second version's value.
        public var secondNumber: Double?
        /// Whether the field is numeric.
        public var isNumeric: Bool

        /// A field that differs.
        public init(name: String, first: String, second: String, firstNumber: Double? = nil, secondNumber: Double? = nil, isNumeric: Bool = false) {
            self.name = name
            self.first = first
            self.second = second
            self.firstNumber = firstNumber
            self.secondNumber = secondNumber
            self.isNumeric = isNumeric
        }

        enum CodingKeys: String, CodingKey { case name, first, second }

        public func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(name, forKey: .name)
            if isNumeric {
                try container.encode(firstNumber, forKey: .first)
                try container.encode(secondNumber, forKey: .second)
            } else {
                try container.encode(first, forKey: .first)
                try container.encode(second, forKey: .second)
            }
        }

        public init(from decoder: Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            name = try container.decode(String.self, forKey: .name)
            func value(_ key: CodingKeys) throws -> (text: String, number: Double?, numeric: Bool) {
                if let text = try? container.decode(String.self, forKey: key) { return (text, nil, false) }
                let number = try container.decodeIfPresent(Double.self, forKey: key)
                return (number.map { String($0) } ?? "-", number, true)
            }
            let a = try value(.first)
            let b = try value(.second)
            (first, firstNumber, second, secondNumber, isNumeric) = (a.text, a.number, b.text, b.number, a.numeric || b.numeric)
        }
    }

    /// The first version.
    public var first: Int64
    /// The second version.
    public var second: Int64
    /// Fields whose values differ (tags as `tag.KEY`).
    public var fields: [Field]
    /// Whether both models have the same architecture (the weight comparison needs it).
    public var sameArchitecture: Bool
    /// ‖w₂ - w₁‖₂.
    public var weightDistance: Double?
    /// ‖w₂ - w₁‖₂ / ‖w₁‖₂.
    public var relativeDistance: Double?
    /// max |w₂ - w₁|.
    public var largestChange: Double?
    /// The cosine of the angle between the weight vectors.
    public var cosine: Double?

    enum CodingKeys: String, CodingKey {
        case first, second, fields
        case sameArchitecture = "same_architecture"
        case weightDistance = "weight_distance", relativeDistance = "relative_distance"
        case largestChange = "largest_change", cosine
    }
}

extension RegistryReader {
    /// Compares versions `a` and `b`: recorded fields and tags, and (reading both verified artifacts) weights.
    public func diff(_ a: Int64, _ b: Int64) throws(RegistryError) -> VersionDiff {
        let first = try version(a)
        let second = try version(b)
        var fields: [VersionDiff.Field] = []
        for (name, x, y) in zip(zip(Self.fieldNames, Self.fieldValues(first)), Self.fieldValues(second)).map({ ($0.0, $0.1, $1) })
        where x.text != y.text || x.number != y.number {
            fields.append(.init(name: name, first: x.text, second: y.text, firstNumber: x.number, secondNumber: y.number, isNumeric: x.numeric))
        }
        let tagsA = try tags(a)
        let tagsB = try tags(b)
        for key in Set(tagsA.keys).union(tagsB.keys).sorted() where tagsA[key] != tagsB[key] {
            fields.append(.init(name: "tag." + key, first: tagsA[key] ?? "-", second: tagsB[key] ?? "-"))
        }
        var result = VersionDiff(first: a, second: b, fields: fields, sameArchitecture: false)
        let fileA: ModelFile
        let fileB: ModelFile
        do {
            fileA = try ModelFile.decode(bytes: try modelFile(of: a), source: "version \(a)").file
            fileB = try ModelFile.decode(bytes: try modelFile(of: b), source: "version \(b)").file
        } catch let error as RegistryError {
            throw error
        } catch {
            throw RegistryError(.integrity, "\(error)")
        }
        guard fileA.spec == fileB.spec else { return result }
        result.sameArchitecture = true
        var distance = 0.0, normA = 0.0, normB = 0.0, dot = 0.0, largest = 0.0
        for (x, y) in zip(fileA.parameters, fileB.parameters) {
            let d = Double(y) - Double(x)
            distance += d * d
            normA += Double(x) * Double(x)
            normB += Double(y) * Double(y)
            dot += Double(x) * Double(y)
            largest = max(largest, abs(d))
        }
        result.weightDistance = distance.squareRoot()
        result.relativeDistance = normA > 0 ? distance.squareRoot() / normA.squareRoot() : nil
        result.largestChange = largest
        result.cosine = normA > 0 && normB > 0 ? dot / (normA.squareRoot() * normB.squareRoot()) : nil
        return result
    }

    static let fieldNames = [
        "hash", "parent", "model", "parameters", "round", "participants", "strategy", "codec", "accuracy", "loss",
        "federated_accuracy", "federated_loss", "upload_bytes", "download_bytes", "status",
    ]

    /// Each field's value: as shown, as a number (numeric fields), and whether the field is numeric.
    static func fieldValues(_ v: ModelVersion) -> [(text: String, number: Double?, numeric: Bool)] {
        func text(_ s: String) -> (String, Double?, Bool) { (s, nil, false) }
        func integer<T: BinaryInteger>(_ x: T?) -> (String, Double?, Bool) { (x.map { String($0) } ?? "-", x.map { Double($0) }, true) }
        func real(_ x: Double?) -> (String, Double?, Bool) {
            (x.map { String(format: "%.4f", $0) } ?? "-", x.flatMap { $0.isFinite ? $0 : nil }, true)
        }
        return [
            text(v.hash), integer(v.parent), text(v.model), integer(v.parameters),
            integer(v.roundLast), integer(v.participants), text(v.strategy), text(v.codec),
            real(v.accuracy), real(v.loss), real(v.federatedAccuracy), real(v.federatedLoss),
            integer(v.uploadBytes), integer(v.downloadBytes), text(v.status.rawValue),
        ]
    }
}

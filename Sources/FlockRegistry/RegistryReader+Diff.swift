import FlockCore
import Foundation

/// How two versions differ: their recorded fields side by side, and their weights.
public struct VersionDiff: Sendable, Codable, Equatable {
    /// One field that differs.
    public struct Field: Sendable, Codable, Equatable {
        /// The field's name, as `registry query` knows it.
        public var name: String
        /// Its value in the first version.
        public var first: String
        /// Its value in the second.
        public var second: String
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
        for (name, x, y) in zip(zip(Self.fieldNames, Self.fieldValues(first)), Self.fieldValues(second)).map({ ($0.0, $0.1, $1) }) where x != y {
            fields.append(.init(name: name, first: x, second: y))
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

    static func fieldValues(_ v: ModelVersion) -> [String] {
        func text(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "-" }
        return [
            v.hash, v.parent.map(String.init) ?? "-", v.model, String(v.parameters),
            v.roundLast.map(String.init) ?? "-", String(v.participants), v.strategy, v.codec,
            text(v.accuracy), text(v.loss), text(v.federatedAccuracy), text(v.federatedLoss),
            String(v.uploadBytes), String(v.downloadBytes), v.status.rawValue,
        ]
    }
}

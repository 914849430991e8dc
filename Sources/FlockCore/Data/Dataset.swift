/// A labelled data set held in memory: `count` rows of `featureCount` Float32 features, row-major, and one
/// integer class label per row.
///
/// Loaded from CSV (label first) or MNIST IDX files; see `Dataset+CSV.swift` and `Dataset+IDX.swift`.
public struct Dataset: Sendable, Equatable {
    /// Features, row-major: row `i` is `features[i * featureCount ..< (i + 1) * featureCount]`.
    public var features: [Float]
    /// Class labels, one per row, each in `0..<classCount`.
    public var labels: [Int32]
    /// Number of features per row.
    public let featureCount: Int
    /// Where the data came from (a file path or a description), for messages.
    public var source: String

    /// Number of rows.
    public var count: Int { labels.count }

    /// The number of classes this data implies: the largest label plus one (0 when empty).
    public var classCount: Int { Int(labels.max() ?? -1) + 1 }

    /// Creates a data set.
    /// - Precondition: `features.count == labels.count * featureCount`.
    public init(features: [Float], labels: [Int32], featureCount: Int, source: String = "memory") {
        precondition(featureCount > 0 && features.count == labels.count * featureCount, "feature matrix does not match labels")
        self.features = features
        self.labels = labels
        self.featureCount = featureCount
        self.source = source
    }

    /// The rows at `indices`, in that order.
    public func subset(_ indices: [Int]) -> Dataset {
        var f = [Float]()
        f.reserveCapacity(indices.count * featureCount)
        var l = [Int32]()
        l.reserveCapacity(indices.count)
        for i in indices {
            f.append(contentsOf: features[i * featureCount ..< (i + 1) * featureCount])
            l.append(labels[i])
        }
        return Dataset(features: f, labels: l, featureCount: featureCount, source: source)
    }

    /// Checks that every label is in `0..<classCount` and the feature count equals `expectedFeatures`.
    /// - Throws: ``CoreError/Code/modelMismatch`` or ``CoreError/Code/invalidData`` naming the file and first bad row.
    public func validate(featureCount expectedFeatures: Int, classCount: Int) throws(CoreError) {
        guard featureCount == expectedFeatures else {
            throw CoreError(
                .modelMismatch,
                "\(source): rows have \(featureCount) features but the model expects \(expectedFeatures)")
        }
        if let bad = labels.firstIndex(where: { $0 < 0 || Int($0) >= classCount }) {
            throw CoreError(
                .invalidData,
                "\(source): row \(bad + 1): label \(labels[bad]) is out of range 0..\(classCount - 1) for this model")
        }
    }
}

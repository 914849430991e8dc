/// The kinds of feature scaling, as named on the command line and in model files.
public enum ScalingKind: String, CaseIterable, Sendable, Codable {
    /// Divide every feature by the largest absolute feature value of the training set.
    case max
    /// Per-feature standardization: subtract the training mean, divide by the standard deviation.
    case standardize
    /// Leave features unchanged.
    case none
}

/// A fitted feature scaling: the kind and the statistics learned from the training set.
///
/// Fit it on the training data only, store it with the model, and apply the same scaling to every row the model
/// sees later (test data, inference inputs), so that no statistic leaks from held-out data.
///
/// Its JSON form is part of the model file format and is stable:
/// `{"kind":"none"}`, `{"kind":"max","max":255}`, `{"kind":"standardize","mean":[...],"deviation":[...]}`.
public enum FeatureScaling: Sendable, Codable, Equatable {
    /// Features are used as they are.
    case none
    /// Every feature is divided by this positive value.
    case max(Float)
    /// Feature `j` becomes `(x - mean[j]) / deviation[j]`; every deviation is positive.
    case standardize(mean: [Float], deviation: [Float])

    /// The kind of scaling.
    public var kind: ScalingKind {
        switch self {
        case .none: return .none
        case .max: return .max
        case .standardize: return .standardize
        }
    }

    /// Learns a scaling of `kind` from `data`, which should be the training set only.
    ///
    /// - `max`: the largest absolute feature value; 1 when every feature is 0 (or the set is empty).
    /// - `standardize`: per-feature mean and population standard deviation (divide by n), accumulated in Double;
    ///   a deviation of 0 (a constant feature) becomes 1, so that feature is only centred.
    /// - `none`: nothing to learn.
    ///
    /// - Complexity: O(`count` x `featureCount`).
    public static func fit(_ kind: ScalingKind, to data: Dataset) -> FeatureScaling {
        switch kind {
        case .none:
            return .none
        case .max:
            var largest: Float = 0
            for value in data.features { largest = Swift.max(largest, value.magnitude) }
            return .max(largest > 0 && largest.isFinite ? largest : 1)
        case .standardize:
            let columns = data.featureCount
            let rows = data.count
            guard rows > 0 else {
                return .standardize(
                    mean: [Float](repeating: 0, count: columns),
                    deviation: [Float](repeating: 1, count: columns)
                )
            }
            var sums = [Double](repeating: 0, count: columns)
            data.features.withUnsafeBufferPointer { features in
                for row in 0..<rows {
                    let base = row * columns
                    for j in 0..<columns { sums[j] += Double(features[base + j]) }
                }
            }
            let means = sums.map { $0 / Double(rows) }
            var squares = [Double](repeating: 0, count: columns)
            data.features.withUnsafeBufferPointer { features in
                for row in 0..<rows {
                    let base = row * columns
                    for j in 0..<columns {
                        let d = Double(features[base + j]) - means[j]
                        squares[j] += d * d
                    }
                }
            }
            let deviations = squares.map { sum -> Float in
                let deviation = Float((sum / Double(rows)).squareRoot())
                return deviation > 0 && deviation.isFinite ? deviation : 1
            }
            return .standardize(mean: means.map { Float($0) }, deviation: deviations)
        }
    }

    /// Scales every row of `data` in place.
    /// - Precondition: for `standardize`, `data.featureCount` equals the number of fitted features (checked in
    ///   every build configuration).
    /// - Complexity: O(`count` x `featureCount`).
    public func apply(to data: inout Dataset) {
        let columns = data.featureCount
        switch self {
        case .none:
            return
        case .max(let largest):
            data.features.withUnsafeMutableBufferPointer { features in
                for i in features.indices { features[i] /= largest }
            }
        case .standardize(let mean, let deviation):
            // Checked even in -Ounchecked builds, where `precondition` is compiled out: the loop below is unchecked.
            guard mean.count == columns, deviation.count == columns else {
                fatalError("scaling was fitted on \(mean.count) features, data has \(columns)")
            }
            let rows = data.count
            data.features.withUnsafeMutableBufferPointer { features in
                for row in 0..<rows {
                    Self.standardize(
                        UnsafeMutableBufferPointer(rebasing: features[row * columns..<(row + 1) * columns]),
                        mean: mean,
                        deviation: deviation
                    )
                }
            }
        }
    }

    /// Scales one row of features in place.
    /// - Precondition: for `standardize`, `row.count` equals the number of fitted features.
    public func apply(toRow row: UnsafeMutableBufferPointer<Float>) {
        switch self {
        case .none:
            return
        case .max(let largest):
            for i in row.indices { row[i] /= largest }
        case .standardize(let mean, let deviation):
            guard mean.count == row.count, deviation.count == row.count else {
                fatalError("scaling was fitted on \(mean.count) features, row has \(row.count)")
            }
            Self.standardize(row, mean: mean, deviation: deviation)
        }
    }

    /// Scales one row of features in place.
    /// - Precondition: for `standardize`, `row.count` equals the number of fitted features.
    public func apply(toRow row: inout [Float]) {
        row.withUnsafeMutableBufferPointer { apply(toRow: $0) }
    }

    @inline(__always)
    private static func standardize(_ row: UnsafeMutableBufferPointer<Float>, mean: [Float], deviation: [Float]) {
        mean.withUnsafeBufferPointer { mean in
            deviation.withUnsafeBufferPointer { deviation in
                for j in row.indices { row[j] = (row[j] - mean[j]) / deviation[j] }
            }
        }
    }

    // MARK: Codable

    private enum CodingKeys: String, CodingKey {
        case kind, max, mean, deviation
    }

    /// Decodes the stable JSON form, checking that the statistics are usable.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let kind = try container.decode(ScalingKind.self, forKey: .kind)
        switch kind {
        case .none:
            self = .none
        case .max:
            let largest = try container.decode(Float.self, forKey: .max)
            guard largest.isFinite, largest > 0 else {
                throw DecodingError.dataCorruptedError(
                    forKey: .max,
                    in: container,
                    debugDescription: "max scaling needs a finite positive divisor"
                )
            }
            self = .max(largest)
        case .standardize:
            let mean = try container.decode([Float].self, forKey: .mean)
            let deviation = try container.decode([Float].self, forKey: .deviation)
            guard mean.count == deviation.count else {
                throw DecodingError.dataCorruptedError(
                    forKey: .deviation,
                    in: container,
                    debugDescription: "standardize has \(mean.count) means but \(deviation.count) deviations"
                )
            }
            guard mean.allSatisfy(\.isFinite) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .mean,
                    in: container,
                    debugDescription: "standardize means must be finite"
                )
            }
            guard deviation.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .deviation,
                    in: container,
                    debugDescription: "standardize deviations must be finite and positive"
                )
            }
            self = .standardize(mean: mean, deviation: deviation)
        }
    }

    /// Encodes the stable JSON form: `kind`, then `max` or `mean` and `deviation`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(kind, forKey: .kind)
        switch self {
        case .none:
            break
        case .max(let largest):
            try container.encode(largest, forKey: .max)
        case .standardize(let mean, let deviation):
            try container.encode(mean, forKey: .mean)
            try container.encode(deviation, forKey: .deviation)
        }
    }
}

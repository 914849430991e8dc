import FlockCore
import Foundation
import Testing

@Suite struct FeatureScalingTests {
    /// Two rows of three features. Column means 2, -2, 2; population deviations 1, 2, 0; largest |x| is 4.
    static let train = Dataset(features: [1, -4, 2, 3, 0, 2], labels: [0, 1], featureCount: 3)
    /// Values outside the training range, to show that only the training set is used.
    static let test = Dataset(features: [8, 2, 5], labels: [1], featureCount: 3)

    @Test func kindNames() {
        #expect(ScalingKind.allCases.map(\.rawValue) == ["max", "standardize", "none"])
        #expect(ScalingKind(rawValue: "standardize") == .standardize)
        #expect(FeatureScaling.none.kind == .none)
        #expect(FeatureScaling.max(2).kind == .max)
        #expect(FeatureScaling.standardize(mean: [0], deviation: [1]).kind == .standardize)
    }

    @Test func maxScaling() {
        let scaling = FeatureScaling.fit(.max, to: Self.train)
        #expect(scaling == .max(4))
        var data = Self.train
        scaling.apply(to: &data)
        #expect(data.features == [0.25, -1, 0.5, 0.75, 0, 0.5])
        #expect(data.labels == Self.train.labels)
    }

    @Test func maxOfAllZerosIsOne() {
        let zeros = Dataset(features: [0, 0, 0, 0], labels: [0, 0], featureCount: 2)
        #expect(FeatureScaling.fit(.max, to: zeros) == .max(1))
        let empty = Dataset(features: [], labels: [], featureCount: 2)
        #expect(FeatureScaling.fit(.max, to: empty) == .max(1))
    }

    @Test func standardization() {
        let scaling = FeatureScaling.fit(.standardize, to: Self.train)
        #expect(scaling == .standardize(mean: [2, -2, 2], deviation: [1, 2, 1]))
        var data = Self.train
        scaling.apply(to: &data)
        #expect(data.features == [-1, -1, 0, 1, 1, 0])
    }

    @Test func standardizationUsesThePopulationDeviation() {
        // One column: 2, 4, 4, 4, 5, 5, 7, 9 has mean 5 and population deviation 2 (sample deviation ~2.14).
        let data = Dataset(features: [2, 4, 4, 4, 5, 5, 7, 9], labels: [0, 0, 0, 0, 0, 0, 0, 0], featureCount: 1)
        #expect(FeatureScaling.fit(.standardize, to: data) == .standardize(mean: [5], deviation: [2]))
    }

    @Test func noneLeavesDataAlone() {
        let scaling = FeatureScaling.fit(.none, to: Self.train)
        #expect(scaling == .none)
        var data = Self.train
        scaling.apply(to: &data)
        #expect(data == Self.train)
    }

    @Test(arguments: ScalingKind.allCases)
    func fitUsesTheTrainingSetOnly(kind: ScalingKind) {
        let scaling = FeatureScaling.fit(kind, to: Self.train)
        var test = Self.test
        scaling.apply(to: &test)
        switch kind {
        case .max: #expect(test.features == [2, 0.5, 1.25])
        case .standardize: #expect(test.features == [6, 2, 3])
        case .none: #expect(test.features == [8, 2, 5])
        }
        // Fitting on train + test would give something else.
        var both = Self.train
        both.features += Self.test.features
        both.labels += Self.test.labels
        if kind != .none { #expect(FeatureScaling.fit(kind, to: both) != scaling) }
    }

    @Test(arguments: ScalingKind.allCases)
    func rowOverloadsMatchTheDataSetVersion(kind: ScalingKind) {
        let scaling = FeatureScaling.fit(kind, to: Self.train)
        var data = Self.train
        scaling.apply(to: &data)
        for row in 0..<Self.train.count {
            var values = Array(Self.train.features[row * 3..<row * 3 + 3])
            var viaPointer = values
            scaling.apply(toRow: &values)
            viaPointer.withUnsafeMutableBufferPointer { scaling.apply(toRow: $0) }
            let expected = Array(data.features[row * 3..<row * 3 + 3])
            #expect(values == expected)
            #expect(viaPointer == expected)
        }
    }

    // MARK: JSON

    private static func json(_ scaling: FeatureScaling) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(scaling), as: UTF8.self)
    }

    @Test func stableJSON() throws {
        #expect(try Self.json(.none) == #"{"kind":"none"}"#)
        #expect(try Self.json(.max(255)) == #"{"kind":"max","max":255}"#)
        #expect(
            try Self.json(.standardize(mean: [0.5, -1], deviation: [1, 2.25]))
                == #"{"deviation":[1,2.25],"kind":"standardize","mean":[0.5,-1]}"#
        )
    }

    @Test(arguments: [
        FeatureScaling.none, .max(255), .max(0.1), .standardize(mean: [0.1, -3, 7], deviation: [1, 0.3, 1e-3]),
    ])
    func jsonRoundTrips(scaling: FeatureScaling) throws {
        let data = try JSONEncoder().encode(scaling)
        #expect(try JSONDecoder().decode(FeatureScaling.self, from: data) == scaling)
    }

    @Test(arguments: [
        #"{"kind":"max","max":0}"#,
        #"{"kind":"max","max":-2}"#,
        #"{"kind":"max"}"#,
        #"{"kind":"standardize","mean":[0,1],"deviation":[1]}"#,
        #"{"kind":"standardize","mean":[0],"deviation":[0]}"#,
        #"{"kind":"zscore"}"#,
        #"{"max":2}"#,
    ])
    func refusesBadJSON(json: String) {
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(FeatureScaling.self, from: Data(json.utf8)) }
    }
}

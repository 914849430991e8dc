import FlockCompression
import FlockCore
import Testing

/// The feature moments of several edges, summed word by word in Z_2^32 as secure aggregation sums them, decode
/// to the totals of all their rows and to the standardization a central fit of those rows gives.
@Suite struct FeatureMomentsTests {
    /// Rows whose features span many magnitudes: around 4,000, around 0.003, negative, and constant.
    static func rows(_ count: Int, seed: UInt64) -> Dataset {
        var rng = SeededGenerator(seed: seed)
        var features = [Float]()
        for _ in 0..<count {
            features += [
                Float(4000 + 300 * (rng.nextUnit() - 0.5)), Float(0.003 + 0.001 * (rng.nextUnit() - 0.5)),
                Float(-50 * rng.nextUnit()), 7,
            ]
        }
        return Dataset(features: features, labels: [Int32](repeating: 0, count: count), featureCount: 4)
    }

    static func add(_ words: [UInt32], to sum: inout [UInt32]) {
        for i in sum.indices { sum[i] &+= words[i] }
    }

    @Test func theSumOfTheEdgesEncodingsDecodesToTheFederationsTotals() throws {
        let moments = try FeatureMoments(features: 4)
        let edges = [Self.rows(569, seed: 1), Self.rows(30, seed: 2), Self.rows(1, seed: 3)]
        var sum = [UInt32](repeating: 0, count: moments.wordCount)
        for edge in edges { Self.add(try moments.encode(edge), to: &sum) }
        let totals = try moments.decode(sum: sum)

        let all = Dataset(features: edges.flatMap(\.features), labels: edges.flatMap(\.labels), featureCount: 4)
        #expect(totals.count == Double(all.count))
        for j in 0..<4 {
            let values = (0..<all.count).map { Double(all.features[$0 * 4 + j]) }
            let sum = values.reduce(0, +)
            let squares = values.reduce(0) { $0 + $1 * $1 }
            // Each edge's value is rounded to 2^-32 once.
            #expect(abs(totals.sums[j] - sum) <= 1e-9 * max(1, abs(sum)), "sum of feature \(j)")
            #expect(abs(totals.squares[j] - squares) <= 1e-9 * max(1, squares), "squares of feature \(j)")
        }
        guard case .standardize(let mean, let deviation) = totals.standardization,
              case .standardize(let centralMean, let centralDeviation) = FeatureScaling.fit(.standardize, to: all) else {
            Issue.record("expected standardizations")
            return
        }
        for j in 0..<4 {
            #expect(abs(mean[j] - centralMean[j]) <= 1e-5 * max(1, abs(centralMean[j])), "mean \(j)")
            #expect(abs(deviation[j] - centralDeviation[j]) <= 1e-3 * centralDeviation[j], "deviation \(j): \(deviation[j]) vs \(centralDeviation[j])")
        }
        // The constant feature is only centred.
        #expect(deviation[3] == 1 && centralDeviation[3] == 1)
    }

    @Test func theMostSummandsCarryNothingOutOfAWord() throws {
        let moments = try FeatureMoments(features: 4)
        let edge = Self.rows(200, seed: 4)
        let words = try moments.encode(edge)
        // 65,535 copies of the same edge: every limb sum stays below 2^32.
        let sum = words.map { $0 &* UInt32(FeatureMoments.maximumSummands) }
        let one = try moments.decode(sum: words)
        let many = try moments.decode(sum: sum)
        let n = Double(FeatureMoments.maximumSummands)
        #expect(many.count == 200 * n)
        for j in 0..<4 {
            #expect(abs(many.sums[j] - n * one.sums[j]) <= 1e-6 * max(1, abs(n * one.sums[j])))
            #expect(abs(many.squares[j] - n * one.squares[j]) <= 1e-6 * max(1, n * one.squares[j]))
        }
        // Negative sums survive the wrap-around.
        #expect(many.sums[2] < 0 && one.sums[2] < 0)
    }

    @Test func badInputsAreRefusedWithAMessage() throws {
        let moments = try FeatureMoments(features: 4)
        #expect(throws: CodecError.self) { try FeatureMoments(features: 0) }
        let narrow = Dataset(features: [1, 2, 3], labels: [0], featureCount: 3)
        #expect { try moments.encode(narrow) } throws: { ($0 as? CodecError)?.message.contains("3 features") == true }
        let huge = Dataset(features: [3e38, 0, 0, 0, 3e38, 0, 0, 0], labels: [0, 0], featureCount: 4)
        #expect { try moments.encode(huge) } throws: { ($0 as? CodecError)?.message.contains("too large") == true }
        #expect(throws: CodecError.self) { try moments.decode(sum: [1, 2, 3]) }
        #expect(throws: CodecError.self) { try moments.decode(sum: [UInt32](repeating: 0, count: moments.wordCount)) }
    }
}

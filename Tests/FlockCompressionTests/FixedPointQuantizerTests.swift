import FlockCompression
import FlockSecAgg
import Foundation
import Testing

@Suite struct FixedPointQuantizerTests {
    /// Random deltas in [-scale, scale], from a seeded generator.
    private func deltas(_ count: Int, seed: UInt64, scale: Float = 0.1) -> [Float] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale
        }
    }

    @Test func theDecodedSumIsTheExampleWeightedMeanWithinOneUnitPerEdge() throws {
        let examples = [40, 250, 7, 1000, 3]
        let updates = examples.indices.map { deltas(5_000, seed: UInt64($0)) }
        let codec = try FixedPointQuantizer(maximumWeight: 1000, maximumSummands: examples.count)
        var sum = [UInt32](repeating: 0, count: FixedPointQuantizer.encodedLength(5_000))
        for (update, n) in zip(updates, examples) {
            let words = try codec.encode(update, examples: n, seed: UInt64(n))
            #expect(words.count == 5_001)
            for i in sum.indices { sum[i] &+= words[i] }
        }
        let (mean, weight) = try codec.decodeMean(sum: sum)
        let total = Double(examples.reduce(0, +))
        #expect(abs(weight - total / 1000) < Double(examples.count) / codec.weightScale)
        var worst = 0.0
        for i in mean.indices {
            let exact = zip(updates, examples).reduce(0.0) { $0 + Double($1.0[i]) * Double($1.1) } / total
            worst = max(worst, abs(Double(mean[i]) - exact))
        }
        // Each edge's rounding moves its word by less than one unit; the weight word adds the same again.
        let bound = Double(examples.count) / codec.scale / (total / 1000) * 2
        #expect(worst < bound, "largest error \(worst) against the bound \(bound)")
        #expect(worst > 0, "stochastic rounding leaves some error at these scales")
    }

    @Test func stochasticRoundingIsUnbiasedItsMeanErrorShrinksWithTrials() throws {
        // One coordinate a third of a unit above a grid point: rounding goes up a third of the time.
        let codec = try FixedPointQuantizer(clip: 1, maximumWeight: 1, maximumSummands: 1)
        let x = Float((1000 + 1.0 / 3.0) / codec.scale)
        func meanError(trials: Int) throws -> Double {
            var total = 0.0
            for t in 0..<trials {
                let word = try codec.encode([x], examples: 1, seed: UInt64(t) &* 7_919)[0]
                total += Double(Int32(bitPattern: word)) - Double(x) * codec.scale
            }
            return abs(total / Double(trials))
        }
        let few = try meanError(trials: 400)
        let many = try meanError(trials: 40_000)
        // The error of a mean of Bernoulli(1/3) draws: sd sqrt(2/9 / trials), so 5 sd at 40,000 trials is 0.012.
        #expect(many < 0.012)
        #expect(many < few || few < 0.01)
    }

    @Test func valuesBeyondTheClipAreClippedAndTheSumCannotWrap() throws {
        let codec = try FixedPointQuantizer(clip: 2, maximumWeight: 1, maximumSummands: 3)
        var sum = [UInt32](repeating: 0, count: 3)
        for _ in 0..<3 {
            let words = try codec.encode([1e9, -1e9], examples: 1, seed: 1)
            for i in sum.indices { sum[i] &+= words[i] }
        }
        let (mean, weight) = try codec.decodeMean(sum: sum)
        #expect(abs(weight - 3) < 1e-6)
        #expect(abs(mean[0] - 2) < 1e-6)
        #expect(abs(mean[1] + 2) < 1e-6)
    }

    @Test func badInputsAreRefusedWithAClearError() throws {
        let codec = try FixedPointQuantizer(maximumWeight: 10, maximumSummands: 2)
        #expect(throws: CodecError.self) { try codec.encode([1, .nan], examples: 3, seed: 0) }
        #expect(throws: CodecError.self) { try codec.encode([1], examples: 0, seed: 0) }
        #expect(throws: CodecError.self) { try codec.decodeMean(sum: [5]) }
        #expect(throws: CodecError.self) { try codec.decodeMean(sum: [5, 0]) }
        #expect(throws: CodecError.self) { try FixedPointQuantizer(clip: 8, maximumWeight: 10, maximumSummands: 3_000_000) }
        #expect(throws: CodecError.self) { try FixedPointQuantizer(clip: .infinity, maximumWeight: 10, maximumSummands: 2) }
    }

    @Test func maskedEncodingsSumThroughSecureAggregationToTheSameDecodedMean() throws {
        let ids = (0..<12).map { "edge-\($0)" }
        let examples = ids.indices.map { 10 + 17 * $0 }
        let updates = ids.indices.map { deltas(3_000, seed: 100 + UInt64($0)) }
        let codec = try FixedPointQuantizer(maximumWeight: examples.max()!, maximumSummands: ids.count)
        let encoded = try zip(updates, examples).enumerated().map { i, pair in try codec.encode(pair.0, examples: pair.1, seed: UInt64(i)) }
        // edge-5 drops before sending its masked input: it must not be in the sum.
        let (sum, included) = try secureSum(encoded, round: 3, graphSeed: 9, dropping: 5)
        #expect(included == ids.filter { $0 != "edge-5" }.sorted())
        var plain = [UInt32](repeating: 0, count: sum.count)
        for i in encoded.indices where i != 5 { for j in plain.indices { plain[j] &+= encoded[i][j] } }
        #expect(sum == plain)
        let secure = try codec.decodeMean(sum: sum)
        let direct = try codec.decodeMean(sum: plain)
        #expect(secure.mean == direct.mean)
    }
}

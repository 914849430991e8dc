import FlockCompression
import FlockSecAgg
import Foundation
import Testing

/// Seeded values in [-scale, scale]; layers of different magnitudes when `layered` (the first third 10x).
private func values(_ count: Int, seed: UInt64, scale: Float = 0.05, layered: Bool = false) -> [Float] {
    var state = seed
    return (0..<count).map { i in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        let x = (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale
        return layered && i < count / 3 ? 10 * x : x
    }
}

@Suite struct CodecSpecTests {
    @Test func everyDocumentedIdentifierParsesAndPrintsBack() throws {
        for text in ["f32", "fixed32", "q1", "q2", "q4", "q8", "q16", "rot+q1", "rot+q4", "rot+q16", "sketch:5x20000", "topk:0.001"] {
            #expect(try CodecSpec(parsing: text).identifier == text)
        }
        #expect(try CodecSpec(parsing: "rot+q4") == .quantized(bits: 4, rotated: true))
        #expect(try CodecSpec(parsing: "sketch:5x20000") == .sketch(rows: 5, columns: 20_000))
    }

    @Test func badIdentifiersAreRefusedNamingTheAcceptedForms() {
        for text in ["", "q3", "q0", "rot+q", "rot+f32", "sketch:5", "sketch:0x10", "topk:0", "topk:2", "topk:x", "zstd"] {
            #expect(throws: CodecError.self) { try CodecSpec(parsing: text) }
        }
        #expect(((try? CodecSpec(parsing: "zstd")) == nil))
        do {
            _ = try CodecSpec(parsing: "zstd")
        } catch {
            #expect(error.message.contains("q{1,2,4,8,16}") && error.message.contains("topk:FRACTION"))
        }
    }

    @Test func codecsThatCannotRunUnderSecureAggregationAreRefusedUpFront() throws {
        do {
            try CodecSpec.topK(fraction: 0.01).check(secureAggregation: true)
            Issue.record("top-k was accepted under secure aggregation")
        } catch {
            #expect(error.message.contains("cannot run under secure aggregation"))
        }
        #expect(throws: CodecError.self) { try CodecSpec.f32.check(secureAggregation: true) }
        try CodecSpec.f32.check(secureAggregation: false)
        try CodecSpec.quantized(bits: 4, rotated: true).check(secureAggregation: true)
        try CodecSpec.quantized(bits: 8, rotated: false).check(secureAggregation: false)
        try CodecSpec.topK(fraction: 0.01).check(secureAggregation: false)
        #expect(CodecSpec.quantized(bits: 2, rotated: false).isLinearInTheRing && !CodecSpec.topK(fraction: 0.1).isLinearInTheRing)
    }
}

@Suite struct RandomizedHadamardTests {
    @Test func theRotationIsOrthogonalAndLinear() {
        let d = 5_000
        let rotation = RandomizedHadamard(length: d, seed: 42)
        #expect(rotation.paddedLength == 5_120)
        let a = values(d, seed: 1, layered: true), b = values(d, seed: 2)
        let ra = rotation.rotate(a), rb = rotation.rotate(b)
        // Norms are kept.
        let norm = { (v: [Float]) in v.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }
        #expect(abs(norm(ra) - norm(a)) < 1e-4 * norm(a))
        // The inverse of the sum of rotations is the sum.
        var back = [Float](repeating: 0, count: d)
        rotation.inverse(zip(ra, rb).map { Double($0) + Double($1) }, into: &back)
        for i in 0..<d { #expect(abs(back[i] - (a[i] + b[i])) < 1e-5) }
        // The same seed gives the same rotation; another seed another one.
        #expect(RandomizedHadamard(length: d, seed: 42).rotate(a) == ra)
        #expect(RandomizedHadamard(length: d, seed: 43).rotate(a) != ra)
    }

    @Test func theRotationSpreadsALayeredVectorEvenlyOverBlocks() {
        // The first third is 10x larger: unrotated, block mean squares differ 100x; rotated, by far less.
        let d = 30_000
        let x = values(d, seed: 3, layered: true)
        let y = RandomizedHadamard(length: d, seed: 5).rotate(x)
        let blocks = stride(from: 0, to: y.count, by: 1_024).map { start in
            y[start..<min(start + 1_024, y.count)].reduce(0.0) { $0 + Double($1) * Double($1) }
        }.dropLast()
        #expect(blocks.max()! / blocks.min()! < 2, "\(blocks.min()!) ... \(blocks.max()!)")
    }

    @Test func theRotationSpreadsASpikeEvenlyOverItsBlock() {
        // One large value: rotated, every value of the block it lands in has magnitude |spike| / sqrt(1024).
        let d = 4_096
        var x = [Float](repeating: 0, count: d)
        x[1_234] = 64
        let y = RandomizedHadamard(length: d, seed: 5).rotate(x)
        let hit = y.firstIndex { $0 != 0 }! / 1_024
        for i in 0..<d { #expect(abs(abs(y[i]) - (i / 1_024 == hit ? 2 : 0)) < 1e-5) }
    }
}

@Suite struct MixedRadixPackingTests {
    @Test func sumsOfPackedWordsUnpackToDigitSumsWithoutCarries() throws {
        for (bits, summands) in [(1, 10), (2, 10), (4, 50), (8, 100), (16, 3)] {
            let top = UInt32((1 << bits) - 1)
            let packing = try MixedRadixPacking(radix: UInt64(summands) * UInt64(top) + 1)
            let count = 1_001
            var expected = [UInt64](repeating: 0, count: count)
            var sum = [UInt32](repeating: 0, count: packing.wordCount(digits: count))
            var state = UInt64(bits * 1000 + summands)
            for _ in 0..<summands {
                let digits = (0..<count).map { _ -> UInt32 in
                    state = state &* 6_364_136_223_846_793_005 &+ 1
                    // Half the digits at the top, to reach the largest sums.
                    return state >> 63 == 1 ? top : UInt32(state >> 33) % (top + 1)
                }
                for i in 0..<count { expected[i] += UInt64(digits[i]) }
                let words = digits.withUnsafeBufferPointer { packing.pack($0) }
                for w in sum.indices { sum[w] &+= words[w] }
            }
            var got = [UInt64](repeating: 0, count: count)
            packing.unpack(sum[...], count: count) { got[$0] = $1 }
            #expect(got == expected, "q\(bits) × \(summands)")
        }
        #expect(try MixedRadixPacking(radix: 11).digitsPerWord == 9)
        #expect(MixedRadixPacking(bits: 4).digitsPerWord == 8)
    }
}

@Suite struct StochasticQuantizerTests {
    @Test func stochasticQuantizationIsUnbiasedItsMeanErrorShrinksAsOneOverRootTrials() throws {
        let d = 2_000
        let x = values(d, seed: 7)
        for rotated in [false, true] {
            let codec = try StochasticQuantizer(bits: 2, rotated: rotated, length: d, seed: 11)
            func rmsErrorOfMean(trials: Int) throws -> Double {
                var mean = [Double](repeating: 0, count: d)
                for t in 0..<trials {
                    let decoded = try codec.decodePayload(codec.encodePayload(x, seed: UInt64(t) &* 104_729 &+ 1))
                    for i in 0..<d { mean[i] += Double(decoded[i]) / Double(trials) }
                }
                return (zip(mean, x).reduce(0.0) { $0 + ($1.0 - Double($1.1)) * ($1.0 - Double($1.1)) } / Double(d)).squareRoot()
            }
            let few = try rmsErrorOfMean(trials: 16), many = try rmsErrorOfMean(trials: 256)
            // 16x the trials: the error of the mean shrinks 4x for an unbiased quantizer (3x leaves room for noise).
            #expect(few / many > 3 && few / many < 5.5, "\(codec.identifier): \(few) -> \(many)")
        }
    }

    @Test func onePayloadDecodesWithinOneStepPerValueAndHasTheStatedSize() throws {
        let d = 3_000
        let x = values(d, seed: 8, layered: true)
        for bits in CodecSpec.quantizerBits {
            let codec = try StochasticQuantizer(bits: bits, rotated: false, length: d, seed: 0)
            let payload = try codec.encodePayload(x, seed: 9)
            #expect(payload.count == codec.payloadByteCount)
            #expect(payload.count == 8 + 4 * 3 + 4 * ((d + 32 / bits - 1) / (32 / bits)))
            let decoded = try codec.decodePayload(payload)
            for block in 0..<3 {
                let range = (block * 1_024)..<min(d, (block + 1) * 1_024)
                let step = 2 * x[range].map(abs).max()! / Float((1 << bits) - 1)
                for i in range { #expect(abs(decoded[i] - x[i]) <= step * 1.0001) }
            }
        }
    }

    @Test func corruptOrTruncatedPayloadsAreRefused() throws {
        let codec = try StochasticQuantizer(bits: 4, rotated: true, length: 2_000, seed: 3)
        let good = try codec.encodePayload(values(2_000, seed: 1), seed: 2)
        #expect(throws: CodecError.self) { try codec.decodePayload(Array(good.dropLast())) }
        #expect(throws: CodecError.self) { try codec.decodePayload(good + [0]) }
        #expect(throws: CodecError.self) { try codec.decodePayload([]) }
        var otherLength = good
        otherLength[0] ^= 1
        #expect(throws: CodecError.self) { try codec.decodePayload(otherLength) }
        var unrotated = good
        unrotated[5] = 0
        #expect(throws: CodecError.self) { try codec.decodePayload(unrotated) }
        var nanRange = good
        nanRange.replaceSubrange(8..<12, with: [0x00, 0x00, 0xC0, 0x7F])
        #expect(throws: CodecError.self) { try codec.decodePayload(nanRange) }
        #expect(throws: CodecError.self) { try codec.encodePayload([Float](repeating: .nan, count: 2_000), seed: 0) }
        #expect(throws: CodecError.self) { try codec.encodePayload([1, 2], seed: 0) }
        let q8 = try StochasticQuantizer(bits: 8, rotated: true, length: 2_000, seed: 3)
        #expect(throws: CodecError.self) { try q8.decodePayload(good) }
    }
}

@Suite struct RingQuantizerTests {
    /// Encodings of `updates`, each edge with its example count.
    private func encodings(_ codec: RingQuantizer, _ updates: [[Float]], _ examples: [Int]) throws -> [[UInt32]] {
        try zip(updates, examples).enumerated().map { i, pair in try codec.encode(pair.0, examples: pair.1, seed: UInt64(i) &* 31 &+ 5) }
    }

    private func sum(_ vectors: [[UInt32]]) -> [UInt32] {
        var total = [UInt32](repeating: 0, count: vectors[0].count)
        for v in vectors { for i in total.indices { total[i] &+= v[i] } }
        return total
    }

    @Test func theDecodedSumIsTheSumOfTheDecodedEncodingsAndTheWeightedMeanWithinTheStatedError() throws {
        let d = 4_000, examples = [30, 250, 7, 120, 60, 90, 15, 200, 45, 10]
        let updates = examples.indices.map { values(d, seed: 50 + UInt64($0), scale: 0.02) }
        for (bits, rotated) in [(1, true), (2, false), (4, true), (8, false), (16, true)] {
            let quantizer = try StochasticQuantizer(bits: bits, rotated: rotated, length: d, seed: 77)
            let codec = try RingQuantizer(
                quantizer: quantizer, ranges: [Float](repeating: 0.05, count: quantizer.blockCount), maximumWeight: 250,
                maximumSummands: examples.count)
            let encoded = try encodings(codec, updates, examples)
            #expect(encoded.allSatisfy { $0.count == codec.wordCount })
            let decoded = try codec.decodeMean(sum: sum(encoded), summands: examples.count)
            // Linear: the sum's decoding is the weighted sum of each encoding decoded alone.
            var separately = [Double](repeating: 0, count: d)
            var weight = 0.0
            for e in encoded {
                let one = try codec.decodeMean(sum: e, summands: 1)
                weight += one.totalWeight
                for i in 0..<d { separately[i] += Double(one.mean[i]) * one.totalWeight }
            }
            #expect(abs(decoded.totalWeight - weight) < 1e-6 && abs(weight - Double(examples.reduce(0) { $0 + min($1, 250) }) / 250) < 1e-6)
            var worst = 0.0, rms = 0.0
            for i in 0..<d {
                worst = max(worst, abs(Double(decoded.mean[i]) - separately[i] / weight))
                let truth = zip(updates, examples).reduce(0.0) { $0 + Double($1.0[i]) * Double(min($1.1, 250)) / 250 } / weight
                rms += (Double(decoded.mean[i]) - truth) * (Double(decoded.mean[i]) - truth)
            }
            #expect(worst < 1e-5, "q\(bits): \(worst)")
            // Stated error: each edge's rounding of r·Δ has variance at most step²/4 per value (step =
            // 2s/(2^b - 1)), independent between the K edges; the weighted mean's RMS error is at most
            // step/2 · sqrt(K)/Σ r.
            let step = 2 * 0.05 / Double((1 << bits) - 1)
            let bound = step / 2 * Double(examples.count).squareRoot() / weight
            #expect((rms / Double(d)).squareRoot() <= bound * 1.1, "q\(bits): \((rms / Double(d)).squareRoot()) > \(bound)")
        }
    }

    @Test func valuesClippedToTheRangeStayWithinTheTopDigit() throws {
        // Every value far beyond the range: each digit is 0 or 2^b - 1 whatever the rounding draw, and one
        // encoding decodes as a sum of one.
        for bits in CodecSpec.quantizerBits {
            let quantizer = try StochasticQuantizer(bits: bits, rotated: false, length: 50_000, seed: 0)
            let codec = try RingQuantizer(
                quantizer: quantizer, ranges: [Float](repeating: 0.001, count: quantizer.blockCount), maximumWeight: 1, maximumSummands: 10)
            let words = try codec.encode((0..<50_000).map { $0 % 2 == 0 ? 5 : -5 }, examples: 1, seed: 3)
            let decoded = try codec.decodeMean(sum: words, summands: 1)
            for i in stride(from: 0, to: 50_000, by: 997) { #expect(abs(decoded.mean[i] - (i % 2 == 0 ? 0.001 : -0.001)) < 1e-6, "q\(bits)") }
        }
    }

    @Test func summandsThatDoNotFitTheRingAreRefusedWithTheBitsNeeded() throws {
        let q16 = try StochasticQuantizer(bits: 16, rotated: false, length: 100, seed: 0)
        do {
            _ = try RingQuantizer(quantizer: q16, ranges: [1], maximumWeight: 10, maximumSummands: 100_000)
            Issue.record("100,000 summands of 16 bits were accepted")
        } catch {
            #expect(error.message.contains("33 bits") && error.message.contains("fewer"), "\(error.message)")
        }
        _ = try RingQuantizer(quantizer: q16, ranges: [1], maximumWeight: 10, maximumSummands: 65_537)
        #expect(throws: CodecError.self) { try RingQuantizer(quantizer: q16, ranges: [0], maximumWeight: 10, maximumSummands: 2) }
        #expect(throws: CodecError.self) { try RingQuantizer(quantizer: q16, ranges: [1, 1], maximumWeight: 10, maximumSummands: 2) }
        let codec = try RingQuantizer(quantizer: q16, ranges: [1], maximumWeight: 10, maximumSummands: 2)
        let one = try codec.encode(values(100, seed: 1), examples: 3, seed: 1)
        #expect(throws: CodecError.self) { try codec.decodeMean(sum: Array(one.dropLast()), summands: 1) }
        #expect(throws: CodecError.self) { try codec.decodeMean(sum: one, summands: 3) }
        #expect(throws: CodecError.self) { try codec.decodeMean(sum: [UInt32](repeating: UInt32.max, count: one.count), summands: 1) }
    }

    @Test func rangesAdaptToTheEdgesRootMeanSquare() throws {
        let d = 8_192
        let quantizer = try StochasticQuantizer(bits: 4, rotated: true, length: d, seed: 1)
        // A deliberately poor first guess, 50x too wide.
        let codec = try RingQuantizer(quantizer: quantizer, ranges: [Float](repeating: 1, count: 8), maximumWeight: 1, maximumSummands: 4)
        let updates = (0..<4).map { values(d, seed: 90 + UInt64($0), scale: 0.02 * Float(3).squareRoot()) }
        let decoded = try codec.decodeMean(sum: sum(try encodings(codec, updates, [1, 1, 1, 1])), summands: 4)
        // Uniform values in ±0.0346 have RMS 0.02; rotated, every block has about that RMS.
        for range in decoded.nextRanges { #expect(abs(Double(range) / codec.rangeFactor - 0.02) < 0.002, "\(range)") }
    }

    @Test func maskedEncodingsSumThroughSecureAggregationToTheSameDecodedMean() throws {
        let ids = (0..<10).map { "edge-\($0)" }
        let examples = ids.indices.map { 20 + 13 * $0 }
        let d = 3_000
        let quantizer = try StochasticQuantizer(bits: 2, rotated: true, length: d, seed: 5)
        let codec = try RingQuantizer(
            quantizer: quantizer, ranges: [Float](repeating: 0.08, count: quantizer.blockCount), maximumWeight: examples.max()!,
            maximumSummands: ids.count)
        let encoded = try encodings(codec, ids.indices.map { values(d, seed: 300 + UInt64($0)) }, examples)
        // edge-3 drops before its masked input.
        let (masked, included) = try secureSum(encoded, round: 4, graphSeed: 2, dropping: 3)
        let plain = sum(encoded.enumerated().filter { $0.offset != 3 }.map(\.element))
        #expect(masked == plain)
        let secure = try codec.decodeMean(sum: masked, summands: included.count)
        let direct = try codec.decodeMean(sum: plain, summands: 9)
        #expect(secure.mean == direct.mean && secure.totalWeight == direct.totalWeight)
    }
}

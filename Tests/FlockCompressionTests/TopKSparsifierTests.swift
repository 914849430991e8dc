import FlockCompression
import Foundation
import Testing

@Suite struct TopKSparsifierTests {
    private func values(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(state >> 40) / Float(1 << 24) * 2 - 1
        }
    }

    @Test func thePayloadCarriesExactlyTheLargestValuesAndItsStatedSize() throws {
        let d = 10_000
        let v = values(d, seed: 1)
        let largest = Set(v.indices.sorted { abs(v[$0]) > abs(v[$1]) }.prefix(100))
        for signs in [false, true] {
            let codec = try TopKSparsifier(length: d, fraction: 0.01, signs: signs)
            let (payload, indices, sent) = try codec.encode(v, keeping: 100)
            #expect(Set(indices) == largest && indices == indices.sorted())
            let decoded = try codec.decode(payload)
            #expect(decoded.indices.filter { decoded[$0] != 0 } == indices)
            let mean = indices.reduce(Float(0)) { $0 + abs(v[$1]) } / 100
            for (i, value) in zip(indices, sent) {
                #expect(decoded[i] == value)
                #expect(signs ? abs(value - (v[i] < 0 ? -mean : mean)) < 1e-6 : value == v[i])
            }
            // Header, values, then one varint byte per gap (gaps stay below 128 at 1%… mostly).
            #expect(payload.count >= 8 + (signs ? 4 + 13 : 400) + 100 && payload.count <= 8 + (signs ? 4 + 13 : 400) + 200)
        }
    }

    @Test func errorFeedbackCarriesWhatWasNotSent() throws {
        // Without momentum, what was sent over the rounds plus the residual is everything the edge produced.
        let d = 5_000
        for signs in [false, true] {
            let codec = try TopKSparsifier(length: d, fraction: 0.02, signs: signs)
            var state = ErrorFeedback(length: d)
            var produced = [Double](repeating: 0, count: d), sent = [Double](repeating: 0, count: d)
            for round in 0..<6 {
                let delta = values(d, seed: 40 + UInt64(round)).map { $0 * 0.01 }
                for i in 0..<d { produced[i] += Double(delta[i]) }
                let decoded = try codec.decode(state.encode(delta, with: codec, momentum: 0, warmUp: 0))
                for i in 0..<d { sent[i] += Double(decoded[i]) }
            }
            for i in 0..<d { #expect(abs(sent[i] + Double(state.residual[i]) - produced[i]) < 1e-5) }
            #expect(state.participations == 6)
        }
    }

    @Test func warmUpKeepsAQuarterThenASixteenthThenTheTarget() throws {
        let codec = try TopKSparsifier(length: 4_096, fraction: 0.01)
        var state = ErrorFeedback(length: 4_096)
        var kept = [Int]()
        for round in 0..<4 {
            let decoded = try codec.decode(state.encode(values(4_096, seed: UInt64(round)), with: codec, momentum: 0.9, warmUp: 2))
            kept.append(decoded.filter { $0 != 0 }.count)
        }
        #expect(kept == [1_024, 256, 41, 41])
        // Momentum factor masking: where values were sent, the momentum is cleared.
        #expect(state.momentum.indices.filter { state.momentum[$0] == 0 }.count >= 41)
    }

    @Test func corruptOrTruncatedPayloadsAreRefused() throws {
        let codec = try TopKSparsifier(length: 1_000, fraction: 0.05)
        let good = try codec.encode(values(1_000, seed: 3), keeping: 50).payload
        #expect(throws: CodecError.self) { try codec.decode(Array(good.dropLast())) }
        #expect(throws: CodecError.self) { try codec.decode(good + [0]) }
        #expect(throws: CodecError.self) { try codec.decode(Array(good.prefix(7))) }
        var otherLength = good
        otherLength[0] ^= 1
        #expect(throws: CodecError.self) { try codec.decode(otherLength) }
        var tooMany = good
        tooMany.replaceSubrange(4..<8, with: [0xE9, 0x03, 0, 0])  // k = 1001 > d
        #expect(throws: CodecError.self) { try codec.decode(tooMany) }
        var nan = good
        nan.replaceSubrange(8..<12, with: [0x00, 0x00, 0xC0, 0x7F])
        #expect(throws: CodecError.self) { try codec.decode(nan) }
        var beyond = good
        beyond[beyond.count - 1] = 0x7F  // the last gap jumps past the end
        #expect(throws: CodecError.self) { try codec.decode(beyond) }
        #expect(throws: CodecError.self) { try TopKSparsifier(length: 1_000, fraction: 0.05, signs: true).decode(good) }
        #expect(throws: CodecError.self) { try codec.encode([Float](repeating: .infinity, count: 1_000), keeping: 5) }
    }

    @Test func identifiersCarryMomentumWarmUpAndSigns() throws {
        let spec = try CodecSpec(parsing: "topk:0.03,momentum=0.5,warmup=2,values=sign")
        #expect(spec == .topK(fraction: 0.03, momentum: 0.5, warmUp: 2, signs: true))
        #expect(spec.identifier == "topk:0.03,momentum=0.5,warmup=2,values=sign")
        #expect(throws: CodecError.self) { try CodecSpec(parsing: "topk:0.03,momentum=1") }
        #expect(throws: CodecError.self) { try CodecSpec(parsing: "topk:0.03,speed=9") }
        try spec.check(secureAggregation: false)
    }
}

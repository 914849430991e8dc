import FlockCompression
import Testing

/// `+deflate`: real zlib streams over real codec payloads; what is sent decodes to exactly what the inner
/// codec alone decodes, and every malformed stage is refused.
@Suite struct LosslessStageTests {
    /// An update shaped like a first round's: a third of the values exactly zero (pixels that are always
    /// blank), the rest small, bell-shaped (a sum of four uniforms).
    private func update(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed
        func uniform() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(state >> 40) / Float(1 << 24) - 0.5
        }
        return (0..<count).map { i in i % 3 == 0 ? 0 : (uniform() + uniform() + uniform() + uniform()) * 0.01 }
    }

    /// `count` bytes of a linear congruential stream: nothing for zlib to find.
    private func noise(_ count: Int) -> [UInt8] {
        var state: UInt64 = 9
        return (0..<count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
    }

    @Test func everyPlainCodecDecodesThroughTheStageExactlyAsWithoutIt() throws {
        let delta = update(20_000, seed: 1)
        for identifier in ["f32", "fixed32", "q8", "q4", "rot+q2", "topk:0.05", "topk:0.05,values=sign", "sketch:3x2000,q4"] {
            let inner = try PlainCodec(CodecSpec(parsing: identifier), length: delta.count, seed: 7)
            let staged = try PlainCodec(CodecSpec(parsing: identifier + "+deflate"), length: delta.count, seed: 7)
            let plainPayload = try inner.encode(delta, seed: 3)
            let stagedPayload = try staged.encode(delta, seed: 3)
            #expect(try staged.decode(stagedPayload) == inner.decode(plainPayload), "\(identifier)")
            #expect(stagedPayload.count <= plainPayload.count + 1, "\(identifier): \(stagedPayload.count) > 1 + \(plainPayload.count)")
            #expect(stagedPayload.count <= staged.maximumPayloadBytes)
        }
        // The zero thirds and the skewed 8-bit digits compress: the stage pays on f32 and q8.
        let f32 = try PlainCodec(.deflated(.f32), length: delta.count, seed: 0).encode(delta, seed: 0)
        #expect(f32.first == 1 && f32.count < 3 * 4 * delta.count / 4, "\(f32.count) bytes for \(4 * delta.count)")
    }

    @Test func aPayloadThatDoesNotShrinkIsStoredWithOneTagByte() throws {
        let noise = noise(10_000)
        let wrapped = LosslessStage.wrap(noise)
        #expect(wrapped.count == noise.count + 1 && wrapped.first == 0)
        #expect(try LosslessStage.unwrap(wrapped, limit: noise.count) == noise)
        #expect(throws: CodecError.self) { try LosslessStage.unwrap(wrapped, limit: noise.count - 1) }
    }

    @Test func topKErrorFeedbackRunsUnderTheStage() throws {
        let codec = try PlainCodec(CodecSpec(parsing: "topk:0.01,momentum=0.5+deflate"), length: 10_000, seed: 0)
        #expect(codec.keepsEdgeState && !codec.hasFixedPayloadSize)
        var feedback: ErrorFeedback?
        let delta = update(10_000, seed: 2)
        let first = try codec.decode(codec.encode(delta, seed: 0, feedback: &feedback))
        let residual = try #require(feedback).residual
        // What was not sent stays on the edge: sent + residual = the update (momentum starts at zero).
        for i in stride(from: 0, to: delta.count, by: 97) {
            #expect(abs(first[i] + residual[i] - delta[i]) <= 1e-6 * max(1, abs(delta[i])), "\(i)")
        }
    }

    @Test func corruptTruncatedTrailingAndOversizedStreamsAreRefused() throws {
        let codec = try PlainCodec(CodecSpec(parsing: "q8+deflate"), length: 20_000, seed: 0)
        let good = try codec.encode(update(20_000, seed: 4), seed: 1)
        #expect(good.first == 1)
        #expect(throws: CodecError.self) { try codec.decode([]) }
        #expect(throws: CodecError.self) { try codec.decode([2] + good.dropFirst()) }
        #expect(throws: CodecError.self) { try codec.decode(Array(good.dropLast(9))) }
        #expect(throws: CodecError.self) { try codec.decode(good + [0]) }
        var flipped = good
        flipped[good.count / 2] ^= 0x5A
        #expect(throws: CodecError.self) { try codec.decode(flipped) }
        // A stream that inflates past the inner codec's largest payload: a megabyte of zeros, which zlib
        // packs into a few kilobytes.
        let bomb = LosslessStage.wrap([UInt8](repeating: 0, count: 1 << 20))
        #expect(bomb.count < 8_000)
        #expect(throws: CodecError.self) { try codec.decode(bomb) }
    }

    @Test func theStageParsesOnceAndNeverRunsUnderSecureAggregation() throws {
        let spec = try CodecSpec(parsing: "topk:0.03,values=sign+deflate")
        #expect(spec == .deflated(.topK(fraction: 0.03, signs: true)))
        #expect(spec.identifier == "topk:0.03,values=sign+deflate")
        #expect(!spec.isLinearInTheRing)
        try spec.check(secureAggregation: false)
        #expect(throws: CodecError.self) { try spec.check(secureAggregation: true) }
        #expect(throws: CodecError.self) { try CodecSpec(parsing: "q8+deflate").check(secureAggregation: true) }
        #expect(throws: CodecError.self) { try CodecSpec(parsing: "q8+deflate+deflate") }
        try CodecSpec(parsing: "sketch:5x100+deflate").check(secureAggregation: false)
        #expect(throws: CodecError.self) { try CodecSpec(parsing: "+deflate") }
    }
}

import FlockCompression
import Foundation
import Testing

@Suite struct CountSketchTests {
    private func noise(_ count: Int, seed: UInt64, scale: Float) -> [Float] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale
        }
    }

    @Test func aSketchRecoversPlantedHeavyHitters() throws {
        // 50 planted values of ±1 among 100,000 small ones: the 50 heaviest estimates are exactly them, each
        // within 0.05 of its value.
        let d = 100_000
        var x = noise(d, seed: 1, scale: 0.01)
        var planted = [Int: Float]()
        for j in 0..<50 {
            let i = (j * 7_919 + 13) % d
            planted[i] = j % 2 == 0 ? 1 : -1
            x[i] = planted[i]!
        }
        let sketch = try CountSketch(rows: 5, columns: 5_000, length: d, seed: 3)
        let hits = sketch.heavyHitters(sketch.sketch { x[$0] }, k: 50)
        #expect(Set(hits.map(\.index)) == Set(planted.keys))
        for (i, value) in hits { #expect(abs(value - planted[i]!) < 0.05, "\(i): \(value)") }
    }

    @Test func theSketchOfASumIsTheSumOfTheSketches() throws {
        let d = 20_000
        let sketch = try CountSketch(rows: 3, columns: 500, length: d, seed: 9)
        let a = noise(d, seed: 4, scale: 1), b = noise(d, seed: 5, scale: 1)
        let sa = sketch.sketch { a[$0] }, sb = sketch.sketch { b[$0] }, sum = sketch.sketch { a[$0] + b[$0] }
        for c in 0..<sketch.cellCount { #expect(abs(sa[c] + sb[c] - sum[c]) < 1e-3) }
    }

    @Test func fetchSGDAppliesTheHeavyCoordinatesAndKeepsTheRestForLater() throws {
        // A round whose mean update has 10 heavy coordinates and many light ones: the state applies the 10
        // heavy ones now; the light mass stays in the error sketch, so a later round with a zero update
        // still applies something.
        let d = 10_000
        var x = noise(d, seed: 6, scale: 0.001)
        for j in 0..<10 { x[j * 997] = 0.5 }
        let sketch = try CountSketch(rows: 5, columns: 1_000, length: d, seed: 2)
        var state = FetchSGDState(sketch: sketch, momentum: 0, k: 10)
        let first = state.step(meanSketch: sketch.sketch { x[$0] })
        #expect(Set(first.indices.filter { first[$0] != 0 }) == Set((0..<10).map { $0 * 997 }))
        let later = state.step(meanSketch: [Float](repeating: 0, count: sketch.cellCount))
        #expect(later.contains { $0 != 0 })
        #expect(later.allSatisfy { abs($0) < 0.05 })
    }

    @Test func sketchIdentifiersRunWithAndWithoutSecureAggregation() throws {
        #expect(try CodecSpec(parsing: "sketch:5x7000,q2,k=1000") == .sketch(rows: 5, columns: 7_000, cellBits: 2, k: 1_000))
        #expect(try CodecSpec(parsing: "sketch:5x20000").identifier == "sketch:5x20000")
        #expect(throws: CodecError.self) { try CodecSpec(parsing: "sketch:5x100,q3") }
        try CodecSpec.sketch(rows: 5, columns: 100).check(secureAggregation: false)
        try CodecSpec.sketch(rows: 5, columns: 100).check(secureAggregation: true)
    }
}

@Suite struct SelectionTests {
    @Test func theKthLargestMagnitudeMatchesSorting() {
        var state: UInt64 = 17
        for n in [1, 2, 7, 100, 5_000] {
            let v = (0..<n).map { i -> Float in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                // Many ties: a tenth of the values share one magnitude.
                return i % 10 == 0 ? 0.5 : Float(Int64(bitPattern: state) >> 40) / Float(1 << 23)
            }
            let sorted = v.map(abs).sorted(by: >)
            for k in Set([1, 2, n / 3 + 1, n / 2 + 1, n].filter { $0 >= 1 && $0 <= n }) {
                #expect(TopKSparsifier.kthLargestMagnitude(v, k: k) == sorted[k - 1], "n \(n), k \(k)")
            }
        }
    }

    @Test func theRoundUpdateIsTheMeanOrFetchSGDsStepForASketch() throws {
        var state: FetchSGDState?
        let mean: [Float] = [0.5, -1, 2]
        #expect(try FetchSGDState.update(fromDecodedMean: mean, of: .quantized(bits: 2, rotated: true), length: 3, state: &state) == mean)
        #expect(state == nil)
        // A sketch: the state is made at the first round, and a planted heavy coordinate comes back.
        let spec = CodecSpec.sketch(rows: 5, columns: 400, k: 1)
        let sketch = try CountSketch(rows: 5, columns: 400, length: 10_000, seed: CountSketch.sharedSeed)
        let planted = sketch.sketch { $0 == 1_234 ? 3 : 0 }
        let update = try FetchSGDState.update(fromDecodedMean: planted, of: spec, length: 10_000, state: &state)
        #expect(state != nil && update[1_234] == 3 && update.filter { $0 != 0 }.count == 1)
        #expect(throws: CodecError.self) { try FetchSGDState.update(fromDecodedMean: mean, of: spec, length: 10_000, state: &state) }
    }
}

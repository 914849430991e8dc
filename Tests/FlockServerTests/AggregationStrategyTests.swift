import FlockCore
import Foundation
import FlockServer
import Testing

/// FedAvg and the server optimizers checked against a direct computation of their formulas.
@Suite struct AggregationStrategyTests {
    static let deltas: [[Float]] = [[1, -2, 0.5], [3, 0, -1.5], [-1, 4, 2]]
    static let examples = [10, 30, 60]

    static func mean() throws -> [Float] {
        var average = WeightedAverage(length: 3)
        for (d, n) in zip(deltas, examples) { try average.add(delta: d, examples: n) }
        #expect(average.totalExamples == 100)
        return average.mean()
    }

    @Test func weightedMeanIsTheExampleWeightedAverage() throws {
        let direct: [Float] = (0..<3).map { i in
            Float(zip(Self.deltas, Self.examples).reduce(0.0) { $0 + Double($1.0[i]) * Double($1.1) } / 100)
        }
        #expect(try Self.mean() == direct)  // [0.4, 2.2, 0.8]
        #expect(zip(try Self.mean(), [0.4, 2.2, 0.8] as [Float]).allSatisfy { abs($0 - $1) < 1e-6 })
    }

    @Test func fedAvgAddsTheMeanDelta() throws {
        var state = GlobalModelState(strategy: .fedAvg, weights: [1, 1, 1])
        state.apply(meanDelta: try Self.mean())
        #expect(zip(state.weights, [1.4, 3.2, 1.8] as [Float]).allSatisfy { abs($0 - $1) < 1e-6 })
        #expect(state.round == 1)
    }

    /// Two rounds of the adaptive optimizers, against the formulas of Reddi et al. (2021), Algorithm 2.
    @Test(arguments: ["fedadam", "fedyogi", "fedadagrad"])
    func adaptiveOptimizersFollowTheirFormulas(name: String) throws {
        let strategy = try AggregationStrategy(parsing: name + ":0.1")
        var state = GlobalModelState(strategy: strategy, weights: [0, 0, 0])
        let rounds: [[Float]] = [[0.4, 2.2, 0.8], [-0.2, 1.0, 0.0]]
        var w = [Double](repeating: 0, count: 3), m = w
        var v = [Double](repeating: name == "fedadagrad" ? 1e-6 : 0, count: 3)
        for delta in rounds {
            state.apply(meanDelta: delta)
            for i in 0..<3 {
                let d = Double(delta[i])
                m[i] = 0.9 * m[i] + 0.1 * d
                switch name {
                case "fedadam": v[i] = 0.99 * v[i] + 0.01 * d * d
                case "fedyogi": v[i] -= 0.01 * d * d * (v[i] - d * d > 0 ? 1 : (v[i] - d * d < 0 ? -1 : 0))
                default: v[i] += d * d
                }
                w[i] += 0.1 * m[i] / (v[i].squareRoot() + 1e-3)
            }
        }
        #expect(zip(state.weights, w).allSatisfy { abs(Double($0) - $1) < 1e-5 }, "\(state.weights) vs \(w)")
    }

    @Test func batchedParallelAggregationEqualsAddingOneByOne() throws {
        var rng = SeededGenerator(seed: 3)
        let length = 50_000
        let updates = (0..<7).map { _ in ((0..<length).map { _ in Float(rng.nextNormal()) }, 1 + rng.nextIndex(below: 300)) }
        var sequential = WeightedAverage(length: length)
        for (d, n) in updates { try sequential.add(delta: d, examples: n) }
        for threads in [1, 2, 3] {
            var batched = WeightedAverage(length: length)
            try batched.add(contentsOf: updates.map { (delta: $0.0, examples: $0.1) }, threads: threads)
            #expect(batched.mean() == sequential.mean())
            #expect(batched.totalExamples == sequential.totalExamples && batched.count == 7)
            var a = GlobalModelState(strategy: try AggregationStrategy(parsing: "fedyogi"), weights: [Float](repeating: 0.5, count: length))
            var b = a
            a.apply(meanDelta: batched.mean(), threads: threads)
            b.apply(meanDelta: sequential.mean(), threads: 1)
            #expect(a == b)
        }
        var refused = WeightedAverage(length: length)
        var bad = updates.map { (delta: $0.0, examples: $0.1) }
        bad[4].delta[123] = .nan
        #expect(throws: CoreError.self) { try refused.add(contentsOf: bad, threads: 2) }
        #expect(refused.count == 0 && refused.totalExamples == 0)
    }

    @Test func badUpdatesAreRefusedAndLeaveTheSumUnchanged() throws {
        var average = WeightedAverage(length: 3)
        try average.add(delta: [1, 1, 1], examples: 1)
        #expect(throws: CoreError.self) { try average.add(delta: [1, 1], examples: 5) }
        #expect(throws: CoreError.self) { try average.add(delta: [1, .nan, 1], examples: 5) }
        #expect(throws: CoreError.self) { try average.add(delta: [1, .infinity, 1], examples: 5) }
        #expect(throws: CoreError.self) { try average.add(delta: [1, 1, 1], examples: 0) }
        #expect(average.count == 1 && average.totalExamples == 1)
        #expect(average.mean() == [1, 1, 1])
    }

    @Test func theFixedPointSumDoesNotDependOnTheOrderOfUpdatesAndMatchesADoubleSum() throws {
        var rng = SeededGenerator(seed: 11)
        let length = 20_000
        // Magnitudes from 1e-6 to 10 make a plain float or double sum depend on the order.
        let updates = (0..<9).map { u in
            ((0..<length).map { _ in Float(rng.nextNormal()) * Float(pow(10, Double(u % 4) - 3 + Double(u) / 9)) }, 1 + rng.nextIndex(below: 500))
        }
        var forward = WeightedAverage(length: length)
        for (d, n) in updates { try forward.add(delta: d, examples: n) }
        var backward = WeightedAverage(length: length)
        for (d, n) in updates.reversed() { try backward.add(delta: d, examples: n) }
        #expect(forward.mean() == backward.mean())
        let total = Double(updates.map(\.1).reduce(0, +))
        let reference = (0..<length).map { i in updates.reduce(0.0) { $0 + Double($1.1) * Double($1.0[i]) } / total }
        // Each term is rounded to 2^-32, so the mean is off by at most 9 · 2^-33 / total before the float rounding.
        #expect(zip(forward.mean(), reference).allSatisfy { abs(Double($0) - $1) <= abs($1) * 0x1p-24 + 9 * 0x1p-33 / total })
    }

    @Test func groupSumsFromWeightVectorsAddToTheSameSumInAnyArrangement() throws {
        var rng = SeededGenerator(seed: 12)
        let length = 5_003  // not a multiple of the block
        let global = (0..<length).map { _ in Float(rng.nextNormal()) }
        let locals = (0..<6).map { _ in global.map { $0 + 0.01 * Float(rng.nextNormal()) } }
        let examples = [40, 7, 13, 100, 1, 64]
        let groups = [0..<2, 2..<4, 4..<6]
        // Group sums formed in `order`; the first `split` go to one sum a group at a time, the rest to
        // another all at once over `threads`, and the two sums are merged.
        func sums(_ order: [Int], split: Int, threads: Int) -> WeightedAverage {
            let formed = order.map { g in
                let out = UnsafeMutableBufferPointer<Float>.allocate(capacity: length)
                let buffers = groups[g].map { UnsafeBufferPointer(copy(locals[$0])) }
                defer { buffers.forEach { $0.deallocate() } }
                for (k, e) in groups[g].enumerated() {
                    global.withUnsafeBufferPointer {
                        WeightedAverage.addToGroupSum(difference: buffers[k], from: $0, examples: examples[e], into: out, first: k == 0)
                    }
                }
                // The weight vectors are only read.
                #expect(zip(buffers, groups[g]).allSatisfy { Array($0) == locals[$1] })
                return (sum: UnsafeBufferPointer(out), examples: groups[g].map { examples[$0] }.reduce(0, +), updates: groups[g].count)
            }
            defer { formed.forEach { $0.sum.deallocate() } }
            var parts = [WeightedAverage(length: length), WeightedAverage(length: length)]
            for group in formed.prefix(split) { parts[0].add(groupSums: [group], threads: 1) }
            parts[1].add(groupSums: Array(formed.dropFirst(split)), threads: threads)
            parts[0].merge(parts[1])
            return parts[0]
        }
        let one = sums([0, 1, 2], split: 3, threads: 1)
        for (order, split, threads) in [([2, 0, 1], 1, 2), ([1, 2, 0], 0, 2), ([0, 2, 1], 2, 1)] {
            let other = sums(order, split: split, threads: threads)
            #expect(one.mean() == other.mean())
        }
        #expect(one.count == 6 && one.totalExamples == examples.reduce(0, +) && one.isFinite)
        var deltas = WeightedAverage(length: length)
        for (l, n) in zip(locals, examples) { try deltas.add(delta: zip(l, global).map { $0 - $1 }, examples: n) }
        #expect(zip(one.mean(), deltas.mean()).allSatisfy { abs($0 - $1) <= 1e-6 })
        let bad = copy(locals[0])
        defer { bad.deallocate() }
        bad[17] = .nan
        let out = UnsafeMutableBufferPointer<Float>.allocate(capacity: length)
        defer { out.deallocate() }
        global.withUnsafeBufferPointer { WeightedAverage.addToGroupSum(difference: UnsafeBufferPointer(bad), from: $0, examples: 3, into: out, first: true) }
        var poisoned = WeightedAverage(length: length)
        poisoned.add(groupSums: [(UnsafeBufferPointer(out), 3, 1)], threads: 2)
        #expect(!poisoned.isFinite)
    }

    /// A newly allocated buffer holding `values` (the caller deallocates it).
    func copy(_ values: [Float]) -> UnsafeMutableBufferPointer<Float> {
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: values.count)
        _ = buffer.initialize(from: values)
        return buffer
    }

    @Test func strategyParsing() throws {
        #expect(try AggregationStrategy(parsing: "fedavg") == .fedAvg)
        #expect(try AggregationStrategy(parsing: "fedprox:0.1").proximalMu == 0.1)
        #expect(try AggregationStrategy(parsing: "FedAdam") == .fedAdam(eta: 0.01, beta1: 0.9, beta2: 0.99, tau: 1e-3))
        for bad in ["", "fedsgd", "fedavg:1", "fedprox:-1", "fedadam:x", "fedyogi:1:2"] {
            #expect(throws: CoreError.self) { try AggregationStrategy(parsing: bad) }
        }
    }
}

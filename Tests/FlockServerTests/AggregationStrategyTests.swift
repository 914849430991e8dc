import FlockCore
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

    @Test func strategyParsing() throws {
        #expect(try AggregationStrategy(parsing: "fedavg") == .fedAvg)
        #expect(try AggregationStrategy(parsing: "fedprox:0.1").proximalMu == 0.1)
        #expect(try AggregationStrategy(parsing: "FedAdam") == .fedAdam(eta: 0.01, beta1: 0.9, beta2: 0.99, tau: 1e-3))
        for bad in ["", "fedsgd", "fedavg:1", "fedprox:-1", "fedadam:x", "fedyogi:1:2"] {
            #expect(throws: CoreError.self) { try AggregationStrategy(parsing: bad) }
        }
    }
}

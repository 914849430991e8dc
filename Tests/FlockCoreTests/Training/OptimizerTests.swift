import FlockCore
import Testing

/// Optimizer and schedule steps against values computed by hand (and matching PyTorch's update rules).
@Suite struct OptimizerTests {
    /// Runs `steps` updates on a single weight starting at 1 with constant gradient 0.5 and lr 0.1.
    static func run(_ config: OptimizerConfig, steps: Int) -> [Float] {
        var optimizer = Optimizer(config: config, parameterCount: 1)
        var w: [Float] = [1]
        var trace = [Float]()
        for _ in 0..<steps {
            var g: [Float] = [0.5]
            w.withUnsafeMutableBufferPointer { wp in
                g.withUnsafeMutableBufferPointer { gp in optimizer.update(parameters: wp, gradients: gp, learningRate: 0.1) }
            }
            trace.append(w[0])
        }
        return trace
    }

    static func close(_ a: [Float], _ b: [Float]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) < 1e-5 }
    }

    @Test func plainSGD() {
        #expect(Self.close(Self.run(OptimizerConfig(), steps: 2), [0.95, 0.90]))
    }

    @Test func sgdWithMomentum() {
        // v1 = 0.5, w = 0.95; v2 = 0.9*0.5 + 0.5 = 0.95, w = 0.95 - 0.095 = 0.855
        #expect(Self.close(Self.run(OptimizerConfig(momentum: 0.9), steps: 2), [0.95, 0.855]))
    }

    @Test func sgdWithNesterovMomentum() {
        // v1 = 0.5, step g + mu v = 0.95 -> w = 0.905; v2 = 0.95, step 0.5 + 0.855 = 1.355 -> w = 0.7695
        #expect(Self.close(Self.run(OptimizerConfig(momentum: 0.9, nesterov: true), steps: 2), [0.905, 0.7695]))
    }

    @Test func sgdWithWeightDecay() {
        // g = 0.5 + 0.1 * 1 = 0.6 -> 0.94; g = 0.5 + 0.094 = 0.594 -> 0.8806
        #expect(Self.close(Self.run(OptimizerConfig(weightDecay: 0.1), steps: 2), [0.94, 0.8806]))
    }

    @Test func adam() {
        // With a constant gradient the bias-corrected step is lr * g / (|g| + eps) = 0.1 each time.
        #expect(Self.close(Self.run(OptimizerConfig(kind: .adam), steps: 3), [0.9, 0.8, 0.7]))
    }

    @Test func adamWDecouplesWeightDecay() {
        // w = 1 * (1 - 0.1 * 0.1) - 0.1 = 0.89; then 0.89 * 0.99 - 0.1 = 0.7811
        #expect(Self.close(Self.run(OptimizerConfig(kind: .adamw, weightDecay: 0.1), steps: 2), [0.89, 0.7811]))
    }

    @Test func adamWithL2WeightDecayDiffersFromAdamW() {
        let l2 = Self.run(OptimizerConfig(kind: .adam, weightDecay: 0.1), steps: 3)
        let decoupled = Self.run(OptimizerConfig(kind: .adamw, weightDecay: 0.1), steps: 3)
        #expect(!Self.close(l2, decoupled))
        // Adam step 1 with L2: g = 0.6, normalized step is exactly lr.
        #expect(abs(l2[0] - 0.9) < 1e-6)
    }

    @Test func invalidConfigsAreRefused() {
        #expect(throws: CoreError.self) { try OptimizerConfig(momentum: 1.5).validate() }
        #expect(throws: CoreError.self) { try OptimizerConfig(kind: .adam, nesterov: true).validate() }
        #expect(throws: CoreError.self) { try OptimizerConfig(weightDecay: -1).validate() }
    }

    @Test func stepSchedule() throws {
        let s = try LearningRateSchedule(parsing: "step:2:0.5")
        #expect(s == .step(everyEpochs: 2, gamma: 0.5))
        let f = [0, 19, 20, 39, 40].map { s.factor(step: $0, stepsPerEpoch: 10, totalSteps: 60) }
        #expect(f == [1, 1, 0.5, 0.5, 0.25])
    }

    @Test func cosineWithWarmup() throws {
        let s = try LearningRateSchedule(parsing: "cosine:1")
        let f = [0, 9, 10, 20, 30].map { s.factor(step: $0, stepsPerEpoch: 10, totalSteps: 30) }
        let expected = [0.1, 1.0, 1.0, 0.5, 0.0]
        #expect(zip(f, expected).allSatisfy { abs($0 - $1) < 1e-12 })
    }

    @Test func constantAndBadSchedules() throws {
        #expect(try LearningRateSchedule(parsing: "constant").factor(step: 1000, stepsPerEpoch: 1, totalSteps: 1) == 1)
        for bad in ["", "step", "step:0:0.5", "step:2", "cosine:-1", "linear"] {
            #expect(throws: CoreError.self) { try LearningRateSchedule(parsing: bad) }
        }
    }
}

import FlockCore
import FlockTestSupport
import Testing

/// The trainer: determinism, exact checkpoint resume, clipping, FedProx and early stopping.
@Suite(.serialized) struct TrainerTests {
    static let spec = ModelSpec(inputShape: [12], classCount: 3, layers: [.dense(units: 16), .relu, .dropout(rate: 0.2), .dense(units: 3)])
    static let data = TestData.random(rows: 90, features: 12, classes: 3, seed: 3)

    static func config(epochs: Int) -> TrainingConfig {
        TrainingConfig(
            epochs: epochs, batchSize: 8, learningRate: 0.05, optimizer: OptimizerConfig(momentum: 0.9, nesterov: true, weightDecay: 1e-4),
            schedule: .cosine(warmupEpochs: 1), clipNorm: 5, seed: 42)
    }

    @Test func sameSeedSameWeights() throws {
        func train() throws -> [Float] {
            let model = try Model(spec: Self.spec, seed: 1)
            model.threads = 1
            try Trainer(model: model, config: Self.config(epochs: 2), training: Self.data).run()
            return model.parameterVector()
        }
        #expect(try train() == train())
    }

    @Test func rowSplitOverThreadsGivesTheSameGradient() throws {
        // The same batch through 1 replica and through 3 (rows split, gradients summed) must agree.
        let spec = ModelSpec(
            inputShape: [2, 6, 6], classCount: 3,
            layers: [.conv2d(filters: 3, kernel: 3, stride: 1, padding: 1), .relu, .maxPool2d(size: 2, stride: 2), .dense(units: 3)])
        let data = TestData.random(rows: 11, features: 72, classes: 3, seed: 4)
        func gradient(threads: Int) throws -> (Double, [Float]) {
            let model = try Model(spec: spec, seed: 2)
            model.threads = threads
            var rng = SeededGenerator(seed: 1)
            return model.lossAndGradient(features: data.features, labels: data.labels, rng: &rng)
        }
        let (oneLoss, one) = try gradient(threads: 1)
        let (threeLoss, three) = try gradient(threads: 3)
        #expect(abs(oneLoss - threeLoss) < 1e-6)
        #expect(zip(one, three).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($0)) })
    }

    @Test func twoThreadTrainingIsDeterministic() throws {
        func train() throws -> [Float] {
            let model = try Model(spec: Self.spec, seed: 1)
            model.threads = 2
            try Trainer(model: model, config: Self.config(epochs: 2), training: Self.data).run()
            return model.parameterVector()
        }
        #expect(try train() == train())
    }

    @Test func resumeFromCheckpointEqualsUninterruptedRun() throws {
        let straight = try Model(spec: Self.spec, seed: 1)
        straight.threads = 1
        try Trainer(model: straight, config: Self.config(epochs: 4), training: Self.data, validation: Self.data).run()

        let folder = TestData.temporaryFolder()
        let first = try Model(spec: Self.spec, seed: 1)
        first.threads = 1
        let trainer = try Trainer(model: first, config: Self.config(epochs: 4), training: Self.data, validation: Self.data)
        trainer.trainEpoch()
        trainer.trainEpoch()
        try trainer.checkpoint().write(toFolder: folder)

        let restored = try #require(try TrainingCheckpoint.read(fromFolder: folder))
        #expect(restored == trainer.checkpoint())
        let second = try Model(spec: Self.spec, seed: 999)  // different init: the checkpoint must overwrite it
        second.threads = 1
        let resumed = try Trainer(resuming: restored, model: second, training: Self.data, validation: Self.data)
        #expect(resumed.epoch == 2)
        resumed.run()
        #expect(second.parameterVector() == straight.parameterVector())
        #expect(resumed.history.count == 4)
    }

    @Test func damagedCheckpointIsRefused() throws {
        let folder = TestData.temporaryFolder()
        let model = try Model(spec: Self.spec, seed: 1)
        let trainer = try Trainer(model: model, config: Self.config(epochs: 2), training: Self.data)
        trainer.trainEpoch()
        try trainer.checkpoint().write(toFolder: folder)
        let path = folder + "/" + TrainingCheckpoint.fileName
        var bytes = try #require(FileManager.default.contents(atPath: path))
        bytes[bytes.count / 2] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: path))
        #expect(throws: CoreError.self) { try TrainingCheckpoint.read(fromFolder: folder) }
    }

    @Test func gradientClippingBoundsTheStep() throws {
        // With a tiny clip bound, one SGD step moves the weights by at most lr * bound in L2 norm.
        let model = try Model(spec: Self.spec, seed: 1)
        let before = model.parameterVector()
        let config = TrainingConfig(epochs: 1, batchSize: 90, learningRate: 0.5, clipNorm: 0.01, seed: 1)
        try Trainer(model: model, config: config, training: Self.data).trainEpoch()
        let moved = zip(model.parameterVector(), before).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }.squareRoot()
        #expect(moved <= 0.5 * 0.01 * 1.0001)
        #expect(moved > 0.5 * 0.01 * 0.99)
    }

    @Test func startingFromOtherWeightsEqualsCopyingThemIn() throws {
        // A scratch model holding unrelated weights, started from `global` (its first step reads them in place),
        // ends with exactly the weights of a model set to `global` first; for plain SGD (written out of place,
        // with FedProx and clipping on the way) and for optimizers that copy `global` in first.
        let global = try Model(spec: Self.spec, seed: 5).parameterVector()
        let configs = [
            TrainingConfig(epochs: 2, batchSize: 8, learningRate: 0.1, seed: 7),
            TrainingConfig(epochs: 1, batchSize: 8, learningRate: 0.1, clipNorm: 0.5, proximalMu: 0.3, seed: 7),
            Self.config(epochs: 2),
            TrainingConfig(epochs: 1, batchSize: 8, learningRate: 0.01, optimizer: OptimizerConfig(kind: .adam), seed: 7),
        ]
        for config in configs {
            let copied = try Model(spec: Self.spec, seed: 1)
            try copied.setParameters(global)
            let reference = try Trainer(model: copied, config: config, training: Self.data)
            reference.proximalReference = global.map { $0 * 0.5 }
            reference.run()
            let scratch = try Model(spec: Self.spec, seed: 2)
            let started = try Trainer(model: scratch, config: config, training: Self.data)
            started.proximalReference = global.map { $0 * 0.5 }
            try started.start(from: global)
            #expect(started.checkpoint().parameters == global)
            started.run()
            #expect(scratch.parameterVector() == copied.parameterVector())
            #expect(scratch.parameterVector() != global)
        }
        let trainer = try Trainer(model: try Model(spec: Self.spec, seed: 1), config: configs[0], training: Self.data)
        #expect(throws: CoreError.self) { try trainer.start(from: [1, 2, 3]) }
    }

    @Test func proximalTermPullsTowardsTheReference() throws {
        // Same data and seed; a strong FedProx mu keeps the weights closer to the reference.
        func distance(mu: Double) throws -> Double {
            let model = try Model(spec: Self.spec, seed: 1)
            let reference = model.parameterVector()
            let trainer = try Trainer(
                model: model, config: TrainingConfig(epochs: 3, batchSize: 8, learningRate: 0.1, proximalMu: mu, seed: 1), training: Self.data)
            trainer.proximalReference = reference
            trainer.run()
            return zip(model.parameterVector(), reference).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }.squareRoot()
        }
        let free = try distance(mu: 0)
        let held = try distance(mu: 5)
        #expect(held < free * 0.5)
    }

    @Test func proximalGradientIsMuTimesDistance() throws {
        // With lr 1, plain SGD and zero data gradient impossible to isolate, compare two runs that differ only
        // in mu: the weight difference after one step equals lr * mu * (w - w_ref) for a shifted reference.
        let model = try Model(spec: ModelSpec(inputShape: [2], classCount: 2, layers: [.dense(units: 2)]), seed: 1)
        let start = model.parameterVector()
        let reference = start.map { $0 - 1 }  // w - w_ref = 1 everywhere
        let one = TestData.random(rows: 1, features: 2, classes: 2, seed: 9)
        func step(mu: Double) throws -> [Float] {
            try model.setParameters(start)
            let t = try Trainer(model: model, config: TrainingConfig(epochs: 1, batchSize: 1, learningRate: 0.1, proximalMu: mu, seed: 1), training: one)
            t.proximalReference = reference
            t.trainEpoch()
            return model.parameterVector()
        }
        let without = try step(mu: 0)
        let with = try step(mu: 0.5)
        #expect(zip(without, with).allSatisfy { abs(($0 - $1) - 0.05) < 1e-6 })
    }

    @Test func earlyStoppingStopsAndRestoresTheBestEpoch() throws {
        // Labels are noise, so validation accuracy on other noise stalls; patience 2 stops the run early.
        let validation = TestData.random(rows: 60, features: 12, classes: 3, seed: 77)
        let model = try Model(spec: Self.spec, seed: 1)
        let trainer = try Trainer(
            model: model, config: TrainingConfig(epochs: 50, batchSize: 8, learningRate: 0.2, patience: 2, seed: 1),
            training: Self.data, validation: validation)
        trainer.run()
        #expect(trainer.stoppedEarly)
        #expect(trainer.epoch < 50)
        let best = try #require(trainer.bestEpoch)
        #expect(trainer.epoch - best == 2)
        let bestAccuracy = try #require(trainer.history[best - 1].validationAccuracy)
        #expect(model.evaluate(validation).accuracy == bestAccuracy)
    }

    @Test func badConfigAndMismatchedDataAreRefused() throws {
        let model = try Model(spec: Self.spec, seed: 1)
        #expect(throws: CoreError.self) { try Trainer(model: model, config: TrainingConfig(epochs: 0), training: Self.data) }
        #expect(throws: CoreError.self) { try Trainer(model: model, config: TrainingConfig(learningRate: -1), training: Self.data) }
        let wide = TestData.random(rows: 5, features: 13, classes: 3, seed: 1)
        #expect(throws: CoreError.self) { try Trainer(model: model, config: TrainingConfig(), training: wide) }
        let manyClasses = TestData.random(rows: 50, features: 12, classes: 5, seed: 1)
        #expect(throws: CoreError.self) { try Trainer(model: model, config: TrainingConfig(), training: manyClasses) }
    }
}

import Foundation

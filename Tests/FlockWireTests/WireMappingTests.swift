import FlockCore
import FlockWire
import SwiftProtobuf
import Testing

/// Wire messages survive a binary round trip, and plans are checked before use.
@Suite struct WireMappingTests {
    @Test func roundPlanRoundTripsThroughTheBinaryFormat() throws {
        var plan = Flock_V1_RoundPlan()
        plan.round = 7
        plan.modelHash = String(repeating: "ab", count: 32)
        plan.training = Flock_V1_LocalTraining(TrainingConfig(epochs: 2, batchSize: 32, learningRate: 0.05, proximalMu: 0.01, seed: 9))
        plan.codec.id = "f32"
        plan.secureAggregation.enabled = true
        plan.secureAggregation.graph = "secagg+"
        plan.secureAggregation.threshold = 7
        let bytes: [UInt8] = try plan.serializedBytes()
        let decoded = try Flock_V1_RoundPlan(serializedBytes: bytes)
        #expect(decoded == plan)
        let config = try decoded.training.trainingConfig()
        #expect(config.epochs == 2 && config.batchSize == 32 && config.proximalMu == 0.01 && config.clipNorm == nil)
    }

    @Test func updateStreamHeaderAndChunksAreDistinctParts() throws {
        var header = Flock_V1_UpdateChunk()
        header.header.round = 3
        header.header.exampleCount = 200
        var data = Flock_V1_UpdateChunk()
        data.data = Data([1, 2, 3])
        guard case .header(let h)? = try Flock_V1_UpdateChunk(serializedBytes: try header.serializedBytes() as [UInt8]).part else {
            Issue.record("expected a header")
            return
        }
        #expect(h.exampleCount == 200)
        guard case .data(let d)? = try Flock_V1_UpdateChunk(serializedBytes: try data.serializedBytes() as [UInt8]).part else {
            Issue.record("expected data")
            return
        }
        #expect(d == Data([1, 2, 3]))
    }

    @Test func plansOutOfRangeAreRefused() {
        var training = Flock_V1_LocalTraining(TrainingConfig())
        training.epochs = 0
        #expect(throws: CoreError.self) { try training.trainingConfig() }
        training = Flock_V1_LocalTraining(TrainingConfig())
        training.batchSize = 1_000_000
        #expect(throws: CoreError.self) { try training.trainingConfig() }
        training = Flock_V1_LocalTraining(TrainingConfig())
        training.learningRate = .nan
        #expect(throws: CoreError.self) { try training.trainingConfig() }
        training = Flock_V1_LocalTraining(TrainingConfig())
        training.clipNorm = -1
        #expect(throws: CoreError.self) { try training.trainingConfig() }
    }

    @Test func edgeIdsAreBounded() {
        #expect(WireLimits.isValidEdgeId("edge-07.lab_a"))
        #expect(!WireLimits.isValidEdgeId(""))
        #expect(!WireLimits.isValidEdgeId("a b"))
        #expect(!WireLimits.isValidEdgeId("edge/1"))
        #expect(!WireLimits.isValidEdgeId(String(repeating: "x", count: 129)))
    }
}

import Foundation

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

/// Evidence reports: a paired comparison survives the wire, and reports that do not add up are refused.
@Suite struct EvidenceReportTests {
    private func comparison() -> PairedComparison {
        var c = PairedComparison()
        c.bothRight = 80
        c.onlyServedRight = 5
        c.onlyComparedRight = 9
        c.bothWrong = 6
        c.unlabelled = 10
        c.agreements = 95
        c.lossDifferenceSum = -1.5
        c.lossDifferenceSquares = 4.25
        c.servedErrors = 1
        c.servedLatencyMs = [1.5, 2.5]
        c.comparedLatencyMs = [1.75]
        return c
    }

    private let hash = String(repeating: "0f", count: 32)

    @Test func aComparisonRoundTripsThroughTheBinaryFormat() throws {
        let report = Flock_V1_EvidenceReport(edge: "e", session: "s", analysis: 3, served: hash, compared: hash, comparison: comparison())
        let decoded = try Flock_V1_EvidenceReport(serializedBytes: try report.serializedBytes() as [UInt8])
        #expect(try decoded.comparison() == comparison())
        #expect(decoded.analysis == 3 && decoded.edgeID == "e")
    }

    @Test func reportsThatDoNotAddUpAreRefused() {
        let good = Flock_V1_EvidenceReport(edge: "e", session: "s", analysis: 3, served: hash, compared: hash, comparison: comparison())
        var tooManyAgreements = good
        tooManyAgreements.agreements = 111
        var nanLoss = good
        nanLoss.lossDifferenceSum = .nan
        var negativeSquares = good
        negativeSquares.lossDifferenceSquares = -1
        var badHash = good
        badHash.servedHash = "xyz"
        var hugeCount = good
        hugeCount.bothRight = UInt64.max
        var tooManyLatencies = good
        tooManyLatencies.comparedLatencyMs = [Double](repeating: 1, count: PairedComparison.latencyWindow + 1)
        var negativeLatency = good
        negativeLatency.servedLatencyMs = [-1]
        for bad in [tooManyAgreements, nanLoss, negativeSquares, badHash, hugeCount, tooManyLatencies, negativeLatency] {
            #expect(throws: CoreError.self) { _ = try bad.comparison() }
        }
    }
}

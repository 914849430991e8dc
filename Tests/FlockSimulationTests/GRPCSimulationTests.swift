import FlockCore
import FlockServer
import FlockSimulation
import FlockTestSupport
import Foundation
import Synchronization
import Testing

/// `simulate --transport grpc`: the coordinator, the edge service and one edge agent per edge, exchanging
/// real protobuf messages over gRPC's in-process transport, on the real mnist5k data.
@Suite(.serialized) struct GRPCSimulationTests {
    @Test func theServingCodeInProcessLearnsLikeTheDirectSimulationAndCountsItsBytes() async throws {
        let options = SimulationTests.options(rounds: 5)
        let collected = Mutex<[Simulation.RoundReport]>([])
        let summary = try await GRPCSimulation(options: options).run { report in collected.withLock { $0.append(report) } }
        let reports = collected.withLock { $0 }
        let direct = try Simulation(options: options).run()
        #expect(reports.map(\.round) == [1, 2, 3, 4, 5])
        #expect(reports.allSatisfy { $0.participants == 10 })
        // Measured at the handlers: every update's values as f32, plus its header, chunk framing and
        // protobuf tags (a few hundred bytes per edge); every edge downloads the whole model file.
        let payload = 10 * summary.parameters * 4
        #expect(reports.allSatisfy { $0.uploadBytes > payload && $0.uploadBytes < payload + 10 * 2_048 })
        #expect(reports.allSatisfy { $0.downloadBytes > payload && $0.downloadBytes < payload + 10 * 16_384 })
        // Other timing decides which waiting edges a round picks, so the two agree closely, not exactly.
        #expect(summary.accuracy > 0.80 && abs(summary.accuracy - direct.accuracy) < 0.03, "grpc \(summary.accuracy), direct \(direct.accuracy)")
    }

    @Test func aStateFolderResumesWhereTheRunStopped() async throws {
        var options = SimulationTests.options(rounds: 2)
        options.stateFolder = TestData.temporaryFolder()
        _ = try await GRPCSimulation(options: options).run()
        options.rounds = 3
        let rounds = Mutex<[Int]>([])
        let summary = try await GRPCSimulation(options: options).run { report in rounds.withLock { $0.append(report.round) } }
        // Only the new round is reported, and it is round 3 of the same history.
        #expect(rounds.withLock { $0 } == [3] && summary.rounds == 3)
        #expect(try RoundCheckpoint.read(fromFolder: options.stateFolder!)?.model.round == 3)
    }
}

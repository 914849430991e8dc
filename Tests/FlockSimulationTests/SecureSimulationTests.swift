import FlockCore
import FlockServer
import FlockSimulation
import FlockTestSupport
import Foundation
import Testing

/// `simulate` under secure aggregation, on the real mnist5k data: every round runs the four phases between
/// in-process edges and the server, and the server decodes only the masked sum.
@Suite struct SecureSimulationTests {
    static func options(rounds: Int, secure: SecureAggregationOptions?, clients: Int = 20, threads: Int = 2) -> Simulation.Options {
        Simulation.Options(
            trainPath: TestData.path("mnist5k-train.csv"), evalPath: TestData.path("mnist5k-test.csv"), clients: clients,
            partition: .iid, fraction: 0.5, rounds: rounds, model: "2nn", seed: 0, threads: threads, secureAggregation: secure)
    }

    @Test func secureRoundsLearnLikePlainOnesWithinHalfAPoint() throws {
        var reports = [Simulation.RoundReport]()
        let secure = try Simulation(options: Self.options(rounds: 5, secure: SecureAggregationOptions())).run { reports.append($0) }
        let plain = try Simulation(options: Self.options(rounds: 5, secure: nil)).run()
        #expect(abs(secure.accuracy - plain.accuracy) <= 0.005, "secure \(secure.accuracy), plain \(plain.accuracy)")
        #expect(secure.accuracy > 0.8)
        for report in reports {
            let s = try #require(report.secureAggregation)
            #expect(report.participants == 10)
            #expect(s.droppedPerPhase == [0, 0, 0, 0])
            #expect(s.graph == "secagg+" && s.neighbours == 8 && s.threshold == 6)
            #expect(s.abortReason == nil)
            // The masked vector (199,210 weights and the weight word) dominates each edge's upload.
            #expect(report.uploadBytes > 10 * 199_211 * 4)
        }
    }

    @Test func dropOutsInEveryPhaseAreRecoveredAndOnlySurvivorsAreAggregated() throws {
        var reports = [Simulation.RoundReport]()
        // 20 edges a round, k = 10: with 30% drop-outs the default threshold (8 of 11) often fails in some
        // neighbourhood, so this run asks for 5.
        let options = Self.options(rounds: 6, secure: SecureAggregationOptions(threshold: 5, dropFraction: 0.3), clients: 40)
        let summary = try Simulation(options: options).run { reports.append($0) }
        var dropsPerPhase = [0, 0, 0, 0]
        for report in reports {
            let s = try #require(report.secureAggregation)
            for p in 0..<4 { dropsPerPhase[p] += s.droppedPerPhase[p] }
            // A neighbourhood left with fewer than t survivors aborts the round; the run goes on.
            guard s.abortReason == nil else { continue }
            // 6 of 20 drop; those that drop in the unmask phase already sent their masked input and count.
            #expect(report.participants == 20 - 6 + s.droppedPerPhase[3])
        }
        #expect(dropsPerPhase.allSatisfy { $0 > 0 }, "drops per phase over the run: \(dropsPerPhase)")
        #expect(summary.accuracy > 0.75, "accuracy \(summary.accuracy)")
    }

    @Test func theResultDoesNotDependOnTheThreadCountOrTheGraph() throws {
        let one = try Simulation(options: Self.options(rounds: 2, secure: SecureAggregationOptions(), threads: 1)).run()
        let two = try Simulation(options: Self.options(rounds: 2, secure: SecureAggregationOptions(), threads: 2)).run()
        let complete = try Simulation(options: Self.options(rounds: 2, secure: SecureAggregationOptions(complete: true))).run()
        // Masks cancel exactly and the encodings are seeded, so the decoded sums are identical.
        #expect(one.accuracy == two.accuracy)
        #expect(one.accuracy == complete.accuracy)
        #expect(abs(one.loss - complete.loss) < 1e-6)
    }

    @Test func aRoundWithTooFewSurvivorsAbortsAndTheModelStays() throws {
        // Threshold 9 of a 9-edge neighbourhood: any drop-out aborts the rounds it touches.
        var reports = [Simulation.RoundReport]()
        let options = Self.options(rounds: 1, secure: SecureAggregationOptions(threshold: 9, dropFraction: 0.2))
        // Ten aborted rounds in a row end the run with an error that says what to change.
        #expect(throws: CoreError.self) { try Simulation(options: options).run { reports.append($0) } }
        #expect(reports.count == 9)
        let aborted = reports.filter { $0.secureAggregation?.abortReason != nil }
        #expect(!aborted.isEmpty)
        for report in aborted {
            #expect(report.participants == 0)
            #expect(report.secureAggregation!.abortReason!.contains("needed"))
        }
    }
}

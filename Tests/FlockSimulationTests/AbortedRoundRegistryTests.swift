import FlockCore
import FlockRegistry
import FlockSimulation
import FlockTestSupport
import Foundation
import Testing

/// `simulate --data-dir` under secure aggregation with aborted rounds in between: round ids count every round
/// run, aborted ones included, and each registry version carries the id of the round that made it, not the count
/// of completed rounds, also after a resume from the checkpoint.
@Suite struct AbortedRoundRegistryTests {
    static func options(rounds: Int, aborted: Set<Int>, registry: String, state: String) -> Simulation.Options {
        var secure = SecureAggregationOptions(complete: true)
        secure.abortedRounds = aborted
        var options = Simulation.Options(
            trainPath: TestData.path("wine-train.csv"), evalPath: TestData.path("wine-test.csv"), clients: 4, clientsPerRound: 4,
            rounds: rounds, model: "logreg", seed: 3, threads: 1, stateFolder: state, secureAggregation: secure)
        options.registryFolder = registry
        return options
    }

    @Test func aVersionCarriesTheIdOfTheRoundThatMadeItAfterAnAbortedRound() throws {
        let registry = TestData.temporaryFolder(), state = TestData.temporaryFolder()
        // Three completed rounds with round 2 aborted: ids 1, 3 and 4 make versions 1-3.
        var reports = [Simulation.RoundReport]()
        _ = try Simulation(options: Self.options(rounds: 3, aborted: [2], registry: registry, state: state)).run { reports.append($0) }
        #expect(reports.map(\.round) == [1, 2, 3, 4])
        #expect(reports.map { $0.secureAggregation?.abortReason != nil } == [false, true, false, false])
        #expect(reports[1].participants == 0 && reports[1].registry == nil)

        // Resumed from the checkpoint up to five completed rounds, with round 6 aborted: ids 5 and 7 make versions
        // 4 and 5, and version 4 descends from round 4's version, the last one before the restart.
        _ = try Simulation(options: Self.options(rounds: 5, aborted: [6], registry: registry, state: state)).run { reports.append($0) }
        #expect(reports.map(\.round) == [1, 2, 3, 4, 5, 6, 7])
        #expect(reports[5].secureAggregation?.abortReason != nil && reports[5].participants == 0)

        // Read back from the registry's SQLite file, oldest first.
        let versions = try Registry(dataDirectory: registry).reader.versions().sorted { $0.id < $1.id }
        let completed = reports.filter { $0.participants > 0 }
        #expect(versions.map(\.id) == [1, 2, 3, 4, 5])
        #expect(versions.map(\.roundFirst) == completed.map(\.round))
        #expect(versions.map(\.roundLast) == [1, 3, 4, 5, 7])
        #expect(versions.map(\.parent) == [nil, 1, 2, 3, 4])
        #expect(versions.map(\.participants) == completed.map(\.participants))
        // The registry's lookup by round finds each version under its own round id and none under an aborted one.
        let reader = try Registry(dataDirectory: registry).reader
        for version in versions {
            #expect(try reader.version(round: version.roundFirst!)?.id == version.id)
        }
        #expect(try reader.version(round: 2) == nil && reader.version(round: 6) == nil)
    }
}

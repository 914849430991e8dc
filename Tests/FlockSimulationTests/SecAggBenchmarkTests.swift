import FlockCore
import FlockSimulation
import Testing

/// `bench secagg` runs the real protocol with every edge and checks the unmasked sum against the plain one
/// (it throws otherwise), so a row is only produced by an exact round.
@Suite struct SecAggBenchmarkTests {
    @Test(arguments: [false, true])
    func aRoundWithDropOutsIsExactAndAccountedFor(complete: Bool) throws {
        let row = try SecAggBenchmark.run(n: 12, length: 5_000, dropFraction: 0.25, complete: complete, workers: 2)
        #expect(row.graph == (complete ? "complete" : "secagg+"))
        #expect(row.neighbours == (complete ? 11 : 8))
        #expect(row.clientSeconds.count == 4 && row.serverSeconds.count == 4)
        #expect(row.clientSeconds.allSatisfy { $0 >= 0 } && row.serverSeconds[3] > 0)
        // Keys, one sealed box per neighbour, the masked vector and the revealed shares.
        #expect(row.bytesPerEdge > 5_000 * 4 + 64 + row.neighbours * 66)
        #expect(row.maskBytesPerSecond > 0)
        // The expansion alone is faster than the phase, which also agrees keys with each neighbour.
        #expect(row.expansionBytesPerSecond > row.maskBytesPerSecond)
        let table = SecAggBenchmark.render([row], chachaBytesPerSecond: 2e9, libcryptoBytesPerSecond: 3e9)
        #expect(table.contains("libsodium 2.00 GB/s, libcrypto 3.00 GB/s") && table.contains(row.graph))
    }

    @Test func theThresholdIsLoweredToTheFewestSurvivorsOfAnyNeighbourhood() throws {
        // Half of the edges drop: the default t (6 of 9) cannot hold in every neighbourhood.
        let row = try SecAggBenchmark.run(n: 10, length: 1_000, dropFraction: 0.5, complete: false, workers: 1)
        #expect(row.threshold < 6 && row.threshold >= 1)
        // An explicit threshold that cannot be met aborts with an error that says so.
        #expect(throws: CoreError.self) {
            try SecAggBenchmark.run(n: 10, length: 1_000, dropFraction: 0.5, complete: false, threshold: 9, workers: 1)
        }
    }
}

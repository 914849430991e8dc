import FlockCore
import FlockRegistry
import FlockServer
import FlockTestSupport
import FlockWire
import Foundation
import Testing

/// The coordinator's registry versions after a failed round: a version's round is the round id (as
/// `admin rounds` and `tag.round` say), and every lookup by round finds the right version.
@Suite struct CoordinatorRegistryTests {
    @Test func afterAFailedRoundTheVersionCarriesTheRoundIdAndLookupsFollowIt() async throws {
        let folder = TestData.temporaryFolder()
        var configuration = CoordinatorTests.configuration(folder: folder, minimum: 2)
        configuration.roundTimeout = 2
        configuration.edgeTimeout = 5
        let time = ManualTime()
        let coordinator = try Coordinator(configuration: configuration, clock: time.clock, logger: LogCapture.silent)
        var sessions = try await CoordinatorTests.registerIdle(coordinator, [("a", 10), ("b", 10)])
        let n = await coordinator.parameterCount

        // Round 1 fails (one update of the two required); its retry, round 2, completes: the first model.
        try await coordinator.submit(id: "a", session: sessions["a"]!, round: 1, examples: 10, delta: [Float](repeating: 0.5, count: n), bytes: 1)
        time.advance(2.1)
        await coordinator.tick()
        for id in ["a", "b"] {
            try await coordinator.submit(id: id, session: sessions[id]!, round: 2, examples: 10, delta: [Float](repeating: 0.1, count: n), bytes: 1)
        }
        var rounds = await coordinator.rounds()
        #expect(rounds.map(\.state) == ["failed", "completed"])
        var reader = try RegistryReader.openReadOnly(dataDirectory: folder)
        let first = try reader.version(1)
        #expect(first.roundFirst == 2 && first.roundLast == 2)
        #expect(try reader.tags(1)["round"] == "2")
        #expect(try reader.query("round = 2").map(\.id) == [1])
        #expect(try reader.query("round = 1").isEmpty)

        // Round 3 evaluates round 2's model on the edges before training: the metrics go to version 1.
        for id in ["a", "b"] {
            let reply = try await coordinator.heartbeat(id: id, session: sessions[id]!, status: .idle, round: 0)
            #expect(CoordinatorTests.plan(reply)?.round == 3)
            try await coordinator.reportEvaluation(id: id, session: sessions[id]!, round: 3, examples: 10, loss: 0.5, accuracy: 0.7)
            try await coordinator.submit(id: id, session: sessions[id]!, round: 3, examples: 10, delta: [Float](repeating: 0.1, count: n), bytes: 1)
        }
        reader = try RegistryReader.openReadOnly(dataDirectory: folder)
        #expect(try reader.version(1).federatedAccuracy == 0.7)
        let second = try reader.version(2)
        #expect(second.roundLast == 3 && second.parent == 1)

        // A restarted server finds the current model's version (round 3's, the second completed) as the parent
        // of the next.
        let restarted = try Coordinator(configuration: configuration, clock: time.clock, logger: LogCapture.silent)
        sessions = try await CoordinatorTests.registerIdle(restarted, [("a", 10), ("b", 10)])
        for id in ["a", "b"] {
            try await restarted.submit(id: id, session: sessions[id]!, round: 4, examples: 10, delta: [Float](repeating: 0.1, count: n), bytes: 1)
        }
        rounds = await restarted.rounds()
        #expect(rounds.map(\.state) == ["failed", "completed", "completed", "completed"])
        reader = try RegistryReader.openReadOnly(dataDirectory: folder)
        let third = try reader.version(3)
        #expect(third.roundLast == 4 && third.parent == 2)
        #expect(try reader.versions().map { $0.roundLast } == [4, 3, 2])
    }

    @Test func adminPinOfARejectedVersionNeedsForceAndRollbackSaysItClearedThePin() async throws {
        let folder = TestData.temporaryFolder()
        var configuration = CoordinatorTests.configuration(folder: folder, minimum: 2)
        // No holdout to check min_accuracy against: the gate rejects every version.
        configuration.promotion.gate.minimumAccuracy = 0.99
        let coordinator = try Coordinator(configuration: configuration, clock: ManualTime().clock, logger: LogCapture.silent)
        let sessions = try await CoordinatorTests.registerIdle(coordinator, [("a", 10), ("b", 10)])
        let n = await coordinator.parameterCount
        for round in 1...2 {
            for id in ["a", "b"] {
                if round > 1 { _ = try await coordinator.heartbeat(id: id, session: sessions[id]!, status: .idle, round: 0) }
                try await coordinator.submit(id: id, session: sessions[id]!, round: UInt64(round), examples: 10, delta: [Float](repeating: 0.1, count: n), bytes: 1)
            }
        }
        let reader = try RegistryReader.openReadOnly(dataDirectory: folder)
        #expect(try reader.versions().map(\.status) == [.rejected, .rejected])

        /// An admin's production change of `version`, or of the version `reference` names.
        func change(
            _ action: Flock_V1_ProductionAction, _ version: UInt64 = 0, reference: String = "", force: Bool = false
        ) async throws(ServeRefusal) -> (message: String, production: Int64?) {
            var request = Flock_V1_ProductionChange()
            request.action = action
            request.version = version
            request.reference = reference
            request.reason = "test"
            request.force = force
            return try await coordinator.changeProduction(request)
        }
        do {
            _ = try await change(.pin, 1)
            Issue.record("a rejected version was pinned without --force")
        } catch {
            #expect(error.message.contains("--force"), "\(error.message)")
        }
        #expect(try reader.alias(Alias.production) == nil)
        let pinned = try await change(.pin, 1, force: true)
        #expect(pinned.message == "production pinned to version 1 (forced)" && pinned.production == 1)
        #expect(try await change(.pin, 2, force: true).production == 2)
        let rolledBack = try await change(.rollback, 0)
        #expect(rolledBack.production == 1)
        #expect(rolledBack.message == "production rolled back to version 1; it was pinned to version 2: the pin is cleared (admin pin pins it again)")
        let event = try #require(try reader.events(alias: Alias.production).last)
        #expect(event.kind == .rolledBack && event.reason == "test " + Registry.pinCleared(2))
        #expect(try reader.alias(Alias.production)?.pinned == false)

        // A version named as registry commands name it: a hash prefix or an alias, resolved by the server.
        let second = try reader.version(2)
        #expect(try await change(.pin, reference: String(second.hash.prefix(8)), force: true).production == 2)
        #expect(try await change(.rollback, reference: "1").production == 1)
        #expect(try await change(.pin, reference: "production").message == "production pinned to version 1")
        do {
            _ = try await change(.pin, reference: "no-such-alias", force: true)
            Issue.record("an unknown reference was pinned")
        } catch {
            #expect(error.kind == .notFound && error.message.contains("neither a version number, an alias nor a known hash prefix"))
        }
    }
}

import FlockCore
import FlockServer
import FlockTestSupport
import FlockWire
import Foundation
import Testing

/// What the coordinator does when an admin, a misfitting edge, a hostile edge or a failing disk gets in the way of
/// a round: the open round finishes under a pause, a declining edge is not waited for, one edge cannot drag the
/// average, a journal never mixes rounds, and per-edge resources are bounded.
@Suite struct CoordinatorSafetyTests {
    typealias Base = CoordinatorTests

    static func zeros(_ coordinator: Coordinator) async -> [Float] {
        [Float](repeating: 0, count: await coordinator.parameterCount)
    }

    @Test func aPauseLetsTheOpenRoundFinish() async throws {
        let time = ManualTime()
        let coordinator = try Coordinator(configuration: Base.configuration(folder: TestData.temporaryFolder()), clock: time.clock, logger: LogCapture.silent)
        let a = try await coordinator.register(id: "a", examples: 10)
        let b = try await coordinator.register(id: "b", examples: 10)
        let planA = try #require(Base.plan(try await coordinator.heartbeat(id: "a", session: a.session, status: .idle, round: 0)))
        _ = try await coordinator.control(.pause)
        // The other selected edge still gets its plan, and a training edge is told to go on.
        let planB = try #require(Base.plan(try await coordinator.heartbeat(id: "b", session: b.session, status: .idle, round: 0)))
        #expect(planB.round == planA.round)
        let training = try await coordinator.heartbeat(id: "a", session: a.session, status: .training, round: planA.round)
        guard case .retry(let keepGoing)? = training.reply else { Issue.record("expected a retry, got \(training)"); return }
        #expect(keepGoing.reason == "keep training")
        // An edge outside the round hears that training is paused.
        let c = try await coordinator.register(id: "c", examples: 10)
        let outside = try await coordinator.heartbeat(id: "c", session: c.session, status: .idle, round: 0)
        guard case .retry(let paused)? = outside.reply else { Issue.record("expected a retry, got \(outside)"); return }
        #expect(paused.reason == "paused")

        let zero = await Self.zeros(coordinator)
        try await coordinator.submit(id: "a", session: a.session, round: planA.round, examples: 10, delta: zero, bytes: 1)
        try await coordinator.submit(id: "b", session: b.session, round: planB.round, examples: 10, delta: zero, bytes: 1)
        let status = await coordinator.status()
        #expect(status.completedRounds == 1 && status.state == "paused" && status.currentRound == 0)
        // No new round opens while paused.
        await coordinator.tick()
        #expect(await coordinator.status().currentRound == 0)
    }

    @Test func anEdgeThatDeclinesIsNotWaitedForNorSelectedUntilItRegistersAgain() async throws {
        let time = ManualTime()
        let log = LogCapture()
        // Started by the admin once all three are registered, so that the round selects all three.
        let coordinator = try Coordinator(
            configuration: Base.configuration(folder: TestData.temporaryFolder()), waitForStart: true, clock: time.clock, logger: log.logger())
        var sessions = [String: String]()
        for id in ["a", "b", "c"] { sessions[id] = try await coordinator.register(id: id, examples: 10).session }
        _ = try await coordinator.control(.start)
        let round = await coordinator.status().currentRound
        #expect(round == 1)
        let left = try await coordinator.heartbeat(
            id: "c", session: sessions["c"]!, status: .declined, round: round, reason: "rows have 30 features but the model takes 6")
        guard case .retry? = left.reply else { Issue.record("expected a retry, got \(left)"); return }
        // Logged with the edge's id as metadata only (shown at debug level), never in the message.
        #expect(log.all.contains { $0.message.contains("an edge declined (rows have 30 features but the model takes 6)") && $0.metadata["edge"] == "c" })
        #expect(await coordinator.clients().first { $0.edgeID == "c" }?.state == "declined")

        // The two others complete the round at once: nobody waits for c.
        let zero = await Self.zeros(coordinator)
        try await coordinator.submit(id: "a", session: sessions["a"]!, round: round, examples: 10, delta: zero, bytes: 1)
        try await coordinator.submit(id: "b", session: sessions["b"]!, round: round, examples: 10, delta: zero, bytes: 1)
        let rounds = await coordinator.rounds()
        #expect(rounds.first?.state == "completed" && rounds.first?.participants == 2)

        // Round 2 goes on without c; once it registers again it may be selected.
        _ = try await coordinator.heartbeat(id: "a", session: sessions["a"]!, status: .idle, round: 0)
        #expect(await coordinator.status().currentRound == 2)
        let notSelected = try await coordinator.heartbeat(id: "c", session: sessions["c"]!, status: .idle, round: 0)
        #expect(Base.plan(notSelected) == nil)
        _ = try await coordinator.register(id: "c", examples: 10)
        #expect(await coordinator.clients().first { $0.edgeID == "c" }?.state == "idle")
        // A decline for a round the edge is not in changes nothing.
        _ = try await coordinator.heartbeat(id: "b", session: sessions["b"]!, status: .declined, round: 99, reason: "x")
        #expect(await coordinator.clients().first { $0.edgeID == "b" }?.state != "declined")
    }

    @Test func oneEdgeCannotOutweighOrOutrunTheRest() async throws {
        var configuration = Base.configuration(folder: TestData.temporaryFolder())
        configuration.maximumExamples = 100
        configuration.maximumUpdateNorm = 2
        let coordinator = try Coordinator(configuration: configuration, clock: ManualTime().clock, logger: LogCapture.silent)
        // A claim of 2^40 examples at registration is weighed as the cap.
        let sessions = try await Base.registerIdle(coordinator, [("a", 1 << 40), ("b", 10)])
        #expect(await coordinator.clients().first { $0.edgeID == "a" }?.exampleCount == 100)
        let round = await coordinator.status().currentRound
        let w0 = try await Base.weights(coordinator, hash: await coordinator.status().modelHash)
        let n = w0.count
        let hostile = [Float](repeating: 10, count: n)
        let honest = (0..<n).map { Float($0 % 3) * 0.01 }
        try await coordinator.submit(id: "a", session: sessions["a"]!, round: round, examples: 1 << 40, delta: hostile, bytes: 1)
        try await coordinator.submit(id: "b", session: sessions["b"]!, round: round, examples: 10, delta: honest, bytes: 1)
        let w1 = try await Base.weights(coordinator, hash: await coordinator.status().modelHash)
        // a counts as 100 examples and its update as norm 2: each value 2 / sqrt(n).
        let clipped = 2 / Double(n).squareRoot()
        for i in 0..<n {
            let expected = Double(w0[i]) + (100 * clipped + 10 * Double(honest[i])) / 110
            #expect(abs(Double(w1[i]) - expected) <= 1e-5, "weight \(i)")
        }
    }

    @Test func inputsAreRefusedWhileTheRoundsJournalCannotStartAndNeverGoToAnotherRounds() async throws {
        let folder = TestData.temporaryFolder()
        let coordinator = try Coordinator(configuration: Base.configuration(folder: folder), clock: ManualTime().clock, logger: LogCapture.silent)
        // A directory where the journal goes: starting it fails, as on a full disk.
        let journalPath = folder + "/" + RoundJournal.fileName
        try FileManager.default.createDirectory(atPath: journalPath + "/blocked", withIntermediateDirectories: true)
        let sessions = try await Base.registerIdle(coordinator, [("a", 10), ("b", 10)])
        let round = await coordinator.status().currentRound
        #expect(round == 1)
        let zero = await Self.zeros(coordinator)
        await #expect { try await coordinator.submit(id: "a", session: sessions["a"]!, round: round, examples: 10, delta: zero, bytes: 1) } throws: {
            ($0 as? ServeRefusal)?.kind == .unavailable
        }
        #expect(await coordinator.rounds().last?.participants == 0)
        // Once the disk works, the same update is accepted into a journal of this round.
        try FileManager.default.removeItem(atPath: journalPath)
        try await coordinator.submit(id: "a", session: sessions["a"]!, round: round, examples: 10, delta: zero, bytes: 1)
        let journaled = try #require(try RoundJournal(folder: folder).read())
        #expect(journaled.opening.record.round == 1 && journaled.entries.count == 1)
    }

    @Test func noRoundOpensUntilTheLastOneIsInTheCheckpoint() async throws {
        let folder = TestData.temporaryFolder()
        let time = ManualTime()
        let coordinator = try Coordinator(configuration: Base.configuration(folder: folder), clock: time.clock, logger: LogCapture.silent)
        // A directory where the checkpoint goes: writing it fails.
        let checkpoint = folder + "/" + RoundCheckpoint.fileName
        try FileManager.default.createDirectory(atPath: checkpoint + "/blocked", withIntermediateDirectories: true)
        let sessions = try await Base.registerIdle(coordinator, [("a", 10), ("b", 10)])
        let delta = (0..<(await coordinator.parameterCount)).map { Float($0 % 4) * 0.01 }
        try await coordinator.submit(id: "a", session: sessions["a"]!, round: 1, examples: 10, delta: delta, bytes: 1)
        try await coordinator.submit(id: "b", session: sessions["b"]!, round: 1, examples: 30, delta: delta, bytes: 1)
        #expect(await coordinator.status().completedRounds == 1)
        // The completed round is only in its journal: no round opens on top of it.
        _ = try await coordinator.heartbeat(id: "a", session: sessions["a"]!, status: .idle, round: 0)
        time.advance(2)
        await coordinator.tick()
        #expect(await coordinator.status().currentRound == 0)
        let held = try #require(try RoundJournal(folder: folder).read())
        #expect(held.opening.record.round == 1 && held.entries.count == 2)

        // The disk recovers: the checkpoint is written, the journal removed, and round 2 opens.
        try FileManager.default.removeItem(atPath: checkpoint)
        time.advance(2)
        for id in ["a", "b"] {
            let session = try await coordinator.register(id: id, examples: 10).session
            _ = try await coordinator.heartbeat(id: id, session: session, status: .training, round: 0)
        }
        await coordinator.tick()
        #expect(try RoundCheckpoint.read(fromFolder: folder)?.model.round == 1)
        #expect(await coordinator.status().currentRound == 2)
        #expect(try RoundJournal(folder: folder).read()?.opening.record.round == 2)
    }

    @Test func anEdgeHasOneUploadAtATime() async throws {
        let coordinator = try Coordinator(configuration: Base.configuration(folder: TestData.temporaryFolder()), clock: ManualTime().clock, logger: LogCapture.silent)
        let sessions = try await Base.registerIdle(coordinator, [("a", 10), ("b", 10)])
        let bytes = UInt64(await coordinator.parameterCount * 4)
        _ = try await coordinator.checkUpload(id: "a", session: sessions["a"]!, round: 1, codec: "f32", payloadBytes: bytes)
        await #expect {
            _ = try await coordinator.checkUpload(id: "a", session: sessions["a"]!, round: 1, codec: "f32", payloadBytes: bytes)
        } throws: { ($0 as? ServeRefusal)?.kind == .resourceExhausted }
        // Another edge is not held up, and the slot is free again once the stream ends.
        _ = try await coordinator.checkUpload(id: "b", session: sessions["b"]!, round: 1, codec: "f32", payloadBytes: bytes)
        await coordinator.endUpload(id: "a")
        _ = try await coordinator.checkUpload(id: "a", session: sessions["a"]!, round: 1, codec: "f32", payloadBytes: bytes)
    }

    @Test func idsThatNeverComeBackAreForgotten() async throws {
        let time = ManualTime()
        // More edges needed than will ever be connected: no round holds the silent ones.
        let configuration = Base.configuration(folder: TestData.temporaryFolder(), minimum: 100)
        let coordinator = try Coordinator(configuration: configuration, clock: time.clock, logger: LogCapture.silent)
        for i in 0..<50 { _ = try await coordinator.register(id: "fake-\(i)", examples: 1) }
        let kept = try await coordinator.register(id: "kept", examples: 1)
        #expect(await coordinator.clients().count == 51)
        // Ten edge timeouts of silence; "kept" heartbeats along the way.
        for _ in 0..<12 {
            time.advance(configuration.edgeTimeout)
            _ = try await coordinator.heartbeat(id: "kept", session: kept.session, status: .training, round: 0)
            await coordinator.tick()
        }
        #expect(await coordinator.clients().map(\.edgeID) == ["kept"])
    }

    @Test func roundIdsBeyondAnyRoundAreEchoedAsSent() async throws {
        let coordinator = try Coordinator(configuration: Base.configuration(folder: TestData.temporaryFolder()), clock: ManualTime().clock, logger: LogCapture.silent)
        let sessions = try await Base.registerIdle(coordinator, [("a", 10), ("b", 10)])
        let zero = await Self.zeros(coordinator)
        for round in [UInt64.max, UInt64(Int.max) + 1] {
            await #expect {
                try await coordinator.submit(id: "a", session: sessions["a"]!, round: round, examples: 1, delta: zero, bytes: 1)
            } throws: { ($0 as? ServeRefusal)?.message == "round \(round) is not open" }
            await #expect {
                _ = try await coordinator.checkUpload(id: "a", session: sessions["a"]!, round: round, codec: "f32", payloadBytes: UInt64(zero.count * 4))
            } throws: { ($0 as? ServeRefusal)?.message.contains("\(round)") == true }
        }
    }

    @Test func aPollForSecureStepsInAPlainRoundSaysSo() async throws {
        let coordinator = try Coordinator(configuration: Base.configuration(folder: TestData.temporaryFolder()), clock: ManualTime().clock, logger: LogCapture.silent)
        let sessions = try await Base.registerIdle(coordinator, [("a", 10), ("b", 10)])
        let step = try await coordinator.awaitSecAgg(id: "a", session: sessions["a"]!, round: 1, phase: .roster)
        #expect(step.aborted == "round 1 does not use secure aggregation")
    }
}

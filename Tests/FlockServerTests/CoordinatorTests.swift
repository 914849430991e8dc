import FlockCompression
import FlockCore
import FlockCrypto
import FlockRegistry
import FlockServer
import FlockTestSupport
import FlockWire
import Foundation
import Synchronization
import Testing

/// A clock the test moves by hand, so that timeouts do not depend on how loaded the machine is.
final class ManualTime: Sendable {
    private let seconds = Mutex<Double>(0)

    /// The clock the coordinator reads.
    var clock: ServeClock { ServeClock { [self] in seconds.withLock { $0 } } }

    /// Moves the time forward.
    func advance(_ by: Double) { seconds.withLock { $0 += by } }
}

/// The serving coordinator without the network: plans, updates, aggregation against a direct computation,
/// refusals that change nothing, dropped edges, failed rounds, and resuming from the checkpoint on disk.
@Suite struct CoordinatorTests {
    /// A small configuration: logistic regression on 6 features and 3 classes.
    static func configuration(folder: String, minimum: Int = 2, perRound: Int = 0) -> ServerConfiguration {
        var c = ServerConfiguration()
        c.dataDirectory = folder
        c.model = "logreg"
        c.inputFeatures = 6
        c.classes = 3
        c.inputScale = 0
        c.minimumClients = minimum
        c.clientsPerRound = perRound
        c.heartbeatSeconds = 0.1
        c.edgeTimeout = 0.5
        c.federatedEvaluation = true
        // These tests drive the plain update path; secure rounds are tested in SecureServeTests.
        c.secureAggregation = false
        return c
    }

    static func plan(_ reply: Flock_V1_HeartbeatResponse) -> Flock_V1_RoundPlan? {
        if case .plan(let p)? = reply.reply { return p }
        return nil
    }

    /// Registers each edge with its example count and reports it idle, so that the next round selects it;
    /// returns the sessions by id.
    static func registerIdle(_ coordinator: Coordinator, _ edges: [(id: String, examples: UInt64)]) async throws -> [String: String] {
        var sessions = [String: String]()
        for edge in edges { sessions[edge.id] = try await coordinator.register(id: edge.id, examples: edge.examples).session }
        for edge in edges { _ = try await coordinator.heartbeat(id: edge.id, session: sessions[edge.id]!, status: .idle, round: 0) }
        return sessions
    }

    static func weights(_ coordinator: Coordinator, hash: String) async throws -> [Float] {
        let bytes = try #require(await coordinator.model(hash: hash)).bytes
        return try ModelFile.decode(bytes: bytes, source: "test").file.parameters
    }

    @Test func aRoundAggregatesTheExampleWeightedMeanAndRefusalsChangeNothing() async throws {
        let folder = TestData.temporaryFolder()
        let coordinator = try Coordinator(configuration: Self.configuration(folder: folder), clock: ManualTime().clock, logger: LogCapture.silent)
        let a = try await coordinator.register(id: "a", examples: 30)
        let b = try await coordinator.register(id: "b", examples: 10)
        let planA = try #require(Self.plan(try await coordinator.heartbeat(id: "a", session: a.session, status: .idle, round: 0)))
        let planB = try #require(Self.plan(try await coordinator.heartbeat(id: "b", session: b.session, status: .idle, round: 0)))
        #expect(planA.round == 1 && planB.round == 1 && planA.modelHash == planB.modelHash)
        #expect(planA.training.epochs == 1 && planA.codec.id == "f32" && planA.evaluate)
        let w0 = try await Self.weights(coordinator, hash: planA.modelHash)
        let n = w0.count
        let dA = (0..<n).map { Float($0 % 7) * 0.01 }
        let dB = (0..<n).map { -Float($0 % 5) * 0.02 }

        // Refused, with the state unchanged: wrong session, wrong length, NaN, unknown round, bad codec, bad count.
        await #expect(throws: ServeRefusal.self) { try await coordinator.submit(id: "a", session: "stale", round: 1, examples: 30, delta: dA, bytes: 0) }
        await #expect(throws: ServeRefusal.self) { try await coordinator.submit(id: "a", session: a.session, round: 1, examples: 30, delta: Array(dA.dropLast()), bytes: 0) }
        var poisoned = dA
        poisoned[3] = .nan
        await #expect(throws: ServeRefusal.self) { try await coordinator.submit(id: "a", session: a.session, round: 1, examples: 30, delta: poisoned, bytes: 0) }
        await #expect(throws: ServeRefusal.self) { try await coordinator.submit(id: "a", session: a.session, round: 7, examples: 30, delta: dA, bytes: 0) }
        await #expect(throws: ServeRefusal.self) { try await coordinator.submit(id: "a", session: a.session, round: 1, examples: 0, delta: dA, bytes: 0) }
        await #expect(throws: ServeRefusal.self) {
            _ = try await coordinator.checkUpload(id: "a", session: a.session, round: 1, codec: "q8", payloadBytes: UInt64(n * 4))
        }
        await #expect(throws: ServeRefusal.self) {
            _ = try await coordinator.checkUpload(id: "a", session: a.session, round: 1, codec: "f32", payloadBytes: UInt64(n * 4 - 4))
        }
        let expectation = try await coordinator.checkUpload(id: "a", session: a.session, round: 1, codec: "f32", payloadBytes: UInt64(n * 4))
        guard case .plain(.f32, let bytes, true) = expectation else {
            Issue.record("an f32 upload expected \(expectation)")
            return
        }
        #expect(bytes == n * 4)

        try await coordinator.reportEvaluation(id: "a", session: a.session, round: 1, examples: 5, loss: 1.0, accuracy: 0.4)
        await #expect(throws: ServeRefusal.self) {
            try await coordinator.reportEvaluation(id: "a", session: a.session, round: 1, examples: 5, loss: 1.0, accuracy: 0.4)
        }
        await #expect(throws: ServeRefusal.self) {
            try await coordinator.reportEvaluation(id: "b", session: b.session, round: 1, examples: 5, loss: .nan, accuracy: 0.4)
        }
        try await coordinator.submit(id: "a", session: a.session, round: 1, examples: 30, delta: dA, bytes: 100)
        await #expect(throws: ServeRefusal.self) { try await coordinator.submit(id: "a", session: a.session, round: 1, examples: 30, delta: dA, bytes: 0) }
        #expect(await coordinator.status().completedRounds == 0)
        try await coordinator.submit(id: "b", session: b.session, round: 1, examples: 10, delta: dB, bytes: 100)
        // Late: the round is closed.
        await #expect(throws: ServeRefusal.self) { try await coordinator.submit(id: "b", session: b.session, round: 1, examples: 10, delta: dB, bytes: 0) }

        let status = await coordinator.status()
        #expect(status.completedRounds == 1)
        let w1 = try await Self.weights(coordinator, hash: status.modelHash)
        for i in 0..<n {
            let expected = Double(w0[i]) + (30 * Double(dA[i]) + 10 * Double(dB[i])) / 40
            #expect(abs(Double(w1[i]) - expected) <= 1e-6, "weight \(i)")
        }
        let rounds = await coordinator.rounds()
        #expect(rounds.count == 1 && rounds[0].state == "completed" && rounds[0].participants == 2 && rounds[0].uploadBytes == 200)
    }

    @Test func aDeploymentFetchGetsTheRegistryFileWhateverTheDownloadCodec() async throws {
        var configuration = Self.configuration(folder: TestData.temporaryFolder())
        // Lossless: the served model keeps the file's own hash, but travels deflated.
        configuration.downloadCodec = try ModelDownload(parsing: "f32+deflate")
        let coordinator = try Coordinator(configuration: configuration, clock: ManualTime().clock, logger: LogCapture.silent)
        let sessions = try await Self.registerIdle(coordinator, [("a", 30), ("b", 10)])
        let n = await coordinator.parameterCount
        try await coordinator.submit(id: "a", session: sessions["a"]!, round: 1, examples: 30, delta: [Float](repeating: 0.01, count: n), bytes: 0)
        try await coordinator.submit(id: "b", session: sessions["b"]!, round: 1, examples: 10, delta: [Float](repeating: -0.01, count: n), bytes: 0)
        let deployment = try #require(await coordinator.deployment(for: "a"))
        let status = await coordinator.status()
        #expect(deployment.productionVersion == 1 && deployment.productionHash == status.modelHash)
        let served = try #require(await coordinator.model(hash: deployment.productionHash, deployment: true))
        let (_, hash) = try ModelFile.decode(bytes: served.bytes, source: "deployment")
        #expect(hash.hex == deployment.productionHash)
        let announced = await coordinator.serverPublicKey
        let key = try Ed25519.PublicKey(bytes: Hex.decode(announced) ?? [])
        try ModelSignature.verify(signature: Hex.encode(served.signature), hash: deployment.productionHash, publicKey: key)
        // A round's fetch of the same hash gets the deflated payload.
        let round = try #require(await coordinator.model(hash: deployment.productionHash))
        #expect(round.bytes != served.bytes && round.signature == served.signature)
    }

    @Test func aSilentEdgeIsDroppedAndTheRoundCompletesWithTheRest() async throws {
        let folder = TestData.temporaryFolder()
        // Registered while idle, so that the first round selects all three.
        let time = ManualTime()
        let coordinator = try Coordinator(
            configuration: Self.configuration(folder: folder, minimum: 2), waitForStart: true, clock: time.clock, logger: LogCapture.silent)
        var sessions = [String: String]()
        for id in ["a", "b", "c"] { sessions[id] = try await coordinator.register(id: id, examples: 10).session }
        _ = try await coordinator.control(.start)
        var plans = [String: Flock_V1_RoundPlan]()
        for id in ["a", "b", "c"] {
            plans[id] = Self.plan(try await coordinator.heartbeat(id: id, session: sessions[id]!, status: .idle, round: 0))
        }
        #expect(plans.values.count == 3 && plans.values.allSatisfy { $0.round == 1 })
        let n = await coordinator.parameterCount
        for id in ["a", "b"] {
            try await coordinator.submit(id: id, session: sessions[id]!, round: 1, examples: 10, delta: [Float](repeating: 0.01, count: n), bytes: 1)
        }
        #expect(await coordinator.status().completedRounds == 0)
        // c goes silent; a and b keep heartbeating (training status) past c's timeout.
        for _ in 0..<8 {
            time.advance(0.1)
            for id in ["a", "b"] { _ = try await coordinator.heartbeat(id: id, session: sessions[id]!, status: .training, round: 1) }
            await coordinator.tick()
        }
        let rounds = await coordinator.rounds()
        #expect(rounds.first?.state == "completed")
        #expect(rounds.first?.participants == 2 && rounds.first?.dropped == 1)
        #expect(await coordinator.clients().first(where: { $0.edgeID == "c" })?.state == "gone")
    }

    @Test func aRoundWithTooFewUpdatesFailsAndIsRetriedUnderANewIdAndTheStateSurvivesARestart() async throws {
        let folder = TestData.temporaryFolder()
        var configuration = Self.configuration(folder: folder, minimum: 2)
        configuration.roundTimeout = 2
        configuration.edgeTimeout = 5
        let time = ManualTime()
        let coordinator = try Coordinator(configuration: configuration, clock: time.clock, logger: LogCapture.silent)
        let sessions = try await Self.registerIdle(coordinator, [("a", 10), ("b", 10)])
        let n = await coordinator.parameterCount
        try await coordinator.submit(id: "a", session: sessions["a"]!, round: 1, examples: 10, delta: [Float](repeating: 0.5, count: n), bytes: 1)
        time.advance(2.1)
        await coordinator.tick()
        var rounds = await coordinator.rounds()
        #expect(rounds.first?.state == "failed" && rounds.first?.reason != nil)
        // The retry is round 2, with a fresh selection; the failed round's update is gone.
        #expect(rounds.count == 2 && rounds[1].round == 2 && rounds[1].state == "running")
        #expect(await coordinator.status().completedRounds == 0)
        for (id, session) in sessions.sorted(by: { $0.key < $1.key }) {
            try await coordinator.submit(id: id, session: session, round: 2, examples: 10, delta: [Float](repeating: 0.25, count: n), bytes: 1)
        }
        rounds = await coordinator.rounds()
        let status = await coordinator.status()
        #expect(status.completedRounds == 1)

        // A new coordinator on the same folder (a restarted server) has the same history and model.
        let restarted = try Coordinator(configuration: configuration, logger: LogCapture.silent)
        #expect(await restarted.rounds() == rounds)
        #expect(await restarted.status().modelHash == status.modelHash)
        // Old sessions are not valid any more: edges must register again.
        await #expect(throws: ServeRefusal.self) { _ = try await restarted.heartbeat(id: "a", session: sessions["a"]!, status: .idle, round: 0) }
    }

    @Test func aRestartMidRoundKeepsEveryAcceptedUpdateAndEvaluation() async throws {
        let folder = TestData.temporaryFolder()
        let configuration = Self.configuration(folder: folder, minimum: 2)
        let coordinator = try Coordinator(configuration: configuration, waitForStart: true, clock: ManualTime().clock, logger: LogCapture.silent)
        var sessions = [String: String]()
        let examples = ["a": 30, "b": 10, "c": 20]
        for id in ["a", "b", "c"] { sessions[id] = try await coordinator.register(id: id, examples: UInt64(examples[id]!)).session }
        _ = try await coordinator.control(.start)
        let plan = try #require(Self.plan(try await coordinator.heartbeat(id: "a", session: sessions["a"]!, status: .idle, round: 0)))
        let w0 = try await Self.weights(coordinator, hash: plan.modelHash)
        let n = w0.count
        let deltas: [String: [Float]] = [
            "a": (0..<n).map { Float($0 % 7) * 0.01 }, "b": (0..<n).map { -Float($0 % 5) * 0.02 }, "c": (0..<n).map { Float($0 % 3) * 0.03 },
        ]
        try await coordinator.reportEvaluation(id: "a", session: sessions["a"]!, round: plan.round, examples: 5, loss: 1.0, accuracy: 0.4)
        try await coordinator.submit(id: "a", session: sessions["a"]!, round: plan.round, examples: 30, delta: deltas["a"]!, bytes: 100)
        #expect(FileManager.default.fileExists(atPath: folder + "/" + RoundJournal.fileName))

        // The process dies here (nothing more is written); a new server starts on the same folder.
        let restarted = try Coordinator(configuration: configuration, clock: ManualTime().clock, logger: LogCapture.silent)
        let open = try #require(await restarted.rounds().last)
        #expect(open.round == plan.round && open.state == "running" && open.uploadBytes == 100)
        for id in ["a", "b", "c"] { sessions[id] = try await restarted.register(id: id, examples: UInt64(examples[id]!)).session }
        // a already reported: no plan for it again, and its evaluation is already recorded.
        #expect(Self.plan(try await restarted.heartbeat(id: "a", session: sessions["a"]!, status: .idle, round: 0)) == nil)
        await #expect(throws: ServeRefusal.self) {
            try await restarted.reportEvaluation(id: "a", session: sessions["a"]!, round: plan.round, examples: 5, loss: 1.0, accuracy: 0.4)
        }
        await #expect(throws: ServeRefusal.self) {
            try await restarted.submit(id: "a", session: sessions["a"]!, round: plan.round, examples: 30, delta: deltas["a"]!, bytes: 100)
        }
        for id in ["b", "c"] {
            let again = try #require(Self.plan(try await restarted.heartbeat(id: id, session: sessions[id]!, status: .idle, round: 0)))
            #expect(again.round == plan.round && again.modelHash == plan.modelHash)
            try await restarted.submit(id: id, session: sessions[id]!, round: plan.round, examples: UInt64(examples[id]!), delta: deltas[id]!, bytes: 100)
        }
        let status = await restarted.status()
        #expect(status.completedRounds == 1)
        #expect(!FileManager.default.fileExists(atPath: folder + "/" + RoundJournal.fileName))
        let w1 = try await Self.weights(restarted, hash: status.modelHash)
        for i in 0..<n {
            let expected = Double(w0[i]) + (30 * Double(deltas["a"]![i]) + 10 * Double(deltas["b"]![i]) + 20 * Double(deltas["c"]![i])) / 60
            #expect(abs(Double(w1[i]) - expected) <= 1e-6, "weight \(i)")
        }
        let record = try #require(await restarted.rounds().last)
        #expect(record.participants == 3 && record.uploadBytes == 300 && record.state == "completed")
    }

    @Test func theJournalEndsAtATornOrDamagedRecord() throws {
        let folder = TestData.temporaryFolder()
        let journal = RoundJournal(folder: folder)
        #expect(try journal.read() == nil)
        let record = RoundRecord.opened(round: 4, selected: 2, modelVersion: 3)
        let opening = RoundJournal.Opening(record: record, selected: ["a", "b"], target: 2, minimumUpdates: 2, plan: [1, 2, 3])
        try journal.begin(opening)
        let first = RoundJournal.Entry.update(edge: "a", examples: 7, bytes: 12, values: [1.5, -2, .leastNonzeroMagnitude])
        let second = RoundJournal.Entry.evaluation(edge: "b", examples: 3, loss: 0.25, accuracy: 0.5)
        try journal.append(first, round: 4)
        try journal.append(second, round: 4)
        let read = try #require(try journal.read())
        #expect(read.opening == opening && read.entries == [first, second])
        // An input of another round is never read into this one.
        try journal.append(.update(edge: "c", examples: 9, bytes: 12, values: [3, 3, 3]), round: 5)
        #expect(try journal.read()?.entries == [first, second])
        try journal.begin(opening)
        try journal.append(first, round: 4)
        try journal.append(second, round: 4)

        // A crash in the middle of an append leaves a torn tail: the acknowledged records still read.
        let whole = TestData.bytes(journal.path)
        try FileIO.appendDurably(Array(whole.prefix(40)), to: journal.path)
        #expect(try journal.read()?.entries == [first, second])
        // A flipped byte inside the second record ends the journal before it.
        var damaged = whole
        damaged[damaged.count - 40] ^= 0x01
        try FileIO.writeAtomically(damaged, to: journal.path)
        #expect(try journal.read()?.entries == [first])
        // A damaged opening is an error that says what to do.
        damaged = whole
        damaged[10] ^= 0x01
        try FileIO.writeAtomically(damaged, to: journal.path)
        #expect { try journal.read() } throws: { ($0 as? CoreError)?.message.contains("remove the file") == true }
        journal.remove()
        #expect(try journal.read() == nil)
    }

    @Test func adminControlsPauseResumeAndFinish() async throws {
        let folder = TestData.temporaryFolder()
        var configuration = Self.configuration(folder: folder, minimum: 1, perRound: 1)
        configuration.rounds = 1
        let coordinator = try Coordinator(configuration: configuration, waitForStart: true, clock: ManualTime().clock, logger: LogCapture.silent)
        let a = try await coordinator.register(id: "a", examples: 10)
        #expect(Self.plan(try await coordinator.heartbeat(id: "a", session: a.session, status: .idle, round: 0)) == nil)
        #expect(await coordinator.status().state == "idle")
        await #expect(throws: ServeRefusal.self) { _ = try await coordinator.control(.pause) }
        _ = try await coordinator.control(.start)
        let plan = try #require(Self.plan(try await coordinator.heartbeat(id: "a", session: a.session, status: .idle, round: 0)))
        _ = try await coordinator.control(.pause)
        #expect(await coordinator.status().state == "paused")
        let n = await coordinator.parameterCount
        try await coordinator.submit(id: "a", session: a.session, round: plan.round, examples: 10, delta: [Float](repeating: 0, count: n), bytes: 1)
        _ = try await coordinator.control(.resume)
        #expect(await coordinator.status().state == "finished")
        await #expect(throws: ServeRefusal.self) { _ = try await coordinator.control(.resume) }
    }

    @Test func configFilesAreReadStrictly() throws {
        let text = """
            # comment
            listen = "0.0.0.0:9000"   # trailing comment
            model = "cnn"
            rounds = 20
            fraction = 0.5
            strategy = "fedadam:0.02"
            federated_evaluation = false
            download_codec = "q8+deflate"
            [local]
            epochs = 2
            lr = 0.1
            [registry]
            min_accuracy = 0.8
            max_drop = -1
            shadow_share = 0.25
            min_pairs = 50
            max_latency_p99_ms = 12.5
            """
        let c = try ServerConfiguration(file: try ConfigFile(text: text, source: "t.toml"))
        #expect(c.promotion.gate.minimumAccuracy == 0.8 && c.promotion.gate.maximumDrop == nil && c.promotion.shadowShare == 0.25)
        #expect(c.promotion.analysis.minimumPairs == 50 && c.promotion.analysis.maximumLatencyP99Ms == 12.5)
        // The commented example that ships with the server parses and validates.
        let example = try ServerConfiguration(file: try ConfigFile(text: try String(contentsOfFile: TestData.root + "/server/flock-server.toml", encoding: .utf8), source: "server/flock-server.toml"))
        try example.validate()
        #expect(example.promotion == PromotionSettings())
        #expect(c.downloadCodec == (try ModelDownload(parsing: "q8+deflate")))
        #expect(c.listen == ServerAddress(host: "0.0.0.0", port: 9000) && c.model == "cnn" && c.rounds == 20 && c.fraction == 0.5)
        #expect(c.strategy == .fedAdam(eta: 0.02, beta1: 0.9, beta2: 0.99, tau: 1e-3) && !c.federatedEvaluation && c.epochs == 2 && c.learningRate == 0.1)
        try c.validate()
        for (bad, fragment) in [
            ("rounds = \"x\"", "t.toml:1: 'rounds' must be an integer"),
            ("round = 3", "t.toml:1: unknown key 'round'"),
            ("rounds = 1\nrounds = 2", "t.toml:2: 'rounds' is set twice"),
            ("[local\nepochs = 1", "t.toml:1: malformed section header"),
            ("model 2nn", "t.toml:1: expected 'key = value'"),
            ("download_codec = \"topk:0.1\"", "t.toml: download codec 'topk:0.1'"),
            ("[registry]\nshadow_sahre = 0.5", "unknown key 'registry.shadow_sahre'"),
        ] {
            #expect {
                _ = try ServerConfiguration(file: try ConfigFile(text: bad, source: "t.toml"))
            } throws: { error in
                (error as? CoreError)?.message.contains(fragment) == true
            }
        }
        var invalid = ServerConfiguration()
        invalid.fraction = 1.5
        #expect(throws: CoreError.self) { try invalid.validate() }
        var badShare = ServerConfiguration()
        badShare.promotion.shadowShare = 0
        #expect(throws: CoreError.self) { try badShare.validate() }
        #expect(throws: CoreError.self) { try ServerAddress(parsing: "localhost") }
        #expect(throws: CoreError.self) { try ServerAddress(parsing: "127.0.0.1:70000") }
        #expect(try ServerAddress(parsing: "[::1]:7070") == ServerAddress(host: "::1", port: 7070))
    }

    @Test func theAdminTokenIsStoredHashedAndItsCopyIsOwnerOnly() throws {
        let folder = TestData.temporaryFolder()
        let (token, created) = try AdminToken.loadOrCreate(inFolder: folder)
        #expect(created)
        let secret = String(decoding: TestData.bytes(folder + "/" + AdminToken.tokenFileName), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(secret.count == 64 && token.accepts(secret) && !token.accepts(secret + "x") && !token.accepts(""))
        let mode = try FileManager.default.attributesOfItem(atPath: folder + "/" + AdminToken.tokenFileName)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let stored = String(decoding: TestData.bytes(folder + "/" + AdminToken.hashFileName), as: UTF8.self)
        #expect(!stored.contains(secret))
        let (again, createdAgain) = try AdminToken.loadOrCreate(inFolder: folder)
        #expect(!createdAgain && again.accepts(secret))
    }
}

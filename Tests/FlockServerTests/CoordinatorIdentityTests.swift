import FlockCore
import FlockCrypto
import FlockServer
import FlockTestSupport
import FlockWire
import Foundation
import Testing

/// What the coordinator does for device identity: a device that registers again while it is in a secure round it
/// advertised keys for, and is still heard from, is refused rather than knocked out of the round (under
/// enrolment); a revoked device is dropped at once.
@Suite struct CoordinatorIdentityTests {
    typealias Base = CoordinatorTests

    /// Three edges in a secure round, each having advertised its keys.
    static func secureRound(_ enrolment: ServerConfiguration.Enrolment) async throws -> (Coordinator, [String: String], UInt64) {
        var configuration = Base.configuration(folder: TestData.temporaryFolder(), minimum: 3)
        configuration.secureAggregation = true
        configuration.secureGraph = "complete"
        configuration.enrolment = enrolment
        let coordinator = try Coordinator(configuration: configuration, clock: ManualTime().clock, logger: LogCapture.silent)
        var sessions = [String: String]()
        for id in ["a", "b", "c"] { sessions[id] = try await coordinator.register(id: id, examples: 10).session }
        var round: UInt64 = 0
        for id in ["a", "b", "c"] {
            let plan = try #require(Base.plan(try await coordinator.heartbeat(id: id, session: sessions[id]!, status: .idle, round: 0)))
            round = plan.round
        }
        for id in ["a", "b", "c"] {
            var keys = Flock_V1_SecAggKeys()
            keys.edgeID = id
            keys.session = sessions[id]!
            keys.round = round
            keys.encryptionKey = Data(X25519.KeyPair.generate().publicKey.bytes)
            keys.maskingKey = Data(X25519.KeyPair.generate().publicKey.bytes)
            try await coordinator.advertiseKeys(keys, bytes: 64)
        }
        return (coordinator, sessions, round)
    }

    @Test func anEnrolledDeviceInASecureRoundIsNotKnockedOutByASecondRegistration() async throws {
        let (coordinator, sessions, round) = try await Self.secureRound(.certificate)
        do {
            _ = try await coordinator.register(id: "a", examples: 10)
            Issue.record("a second registration of a device in the round was accepted")
        } catch {
            #expect(error.kind == .unavailable && error.message.contains("round \(round)"))
        }
        // The first session is untouched: it still speaks for the edge in the round.
        try await coordinator.checkSession(id: "a", session: sessions["a"]!)
        #expect(await coordinator.clients().first { $0.edgeID == "a" }?.state != "gone")
    }

    @Test func anOpenServerLetsARestartedEdgeRegisterAgainAndDropsItsAdvertisedKeys() async throws {
        let (coordinator, sessions, _) = try await Self.secureRound(.open)
        _ = try await coordinator.register(id: "a", examples: 10)
        await #expect(throws: ServeRefusal.self) { try await coordinator.checkSession(id: "a", session: sessions["a"]!) }
    }

    @Test func aRevokedDeviceIsDroppedFromItsRoundAtOnce() async throws {
        let (coordinator, sessions, round) = try await Self.secureRound(.certificate)
        await coordinator.forgetRevoked("b")
        #expect(await !coordinator.clients().contains { $0.edgeID == "b" })
        // Its session is gone: its inputs are no longer taken for the round.
        var shares = Flock_V1_SecAggShares()
        shares.edgeID = "b"
        shares.session = sessions["b"]!
        shares.round = round
        await #expect(throws: ServeRefusal.self) { try await coordinator.shareKeys(shares, bytes: 0) }
    }
}

import FlockCore
import FlockCrypto
import FlockEdge
import FlockTestSupport
import FlockWire
import Foundation
import GRPCCore
import Testing

/// Malformed and out-of-place messages sent over real gRPC to a real server process are refused with a clear
/// status and change nothing; the round then completes with the valid updates, to the exact weighted mean.
@Suite(.serialized) struct WireRefusalTests {
    struct Edge {
        let id: String
        let session: String
    }

    static func code(_ body: () async throws -> Void) async -> RPCError.Code? {
        do { try await body() } catch let error as RPCError { return error.code } catch { return nil }
        return nil
    }

    static func submit(
        _ connection: EdgeConnection, _ edge: Edge, round: UInt64, examples: UInt64 = 10, codec: String = "f32",
        announced: Int? = nil, payload: [UInt8]
    ) async throws {
        var header = Flock_V1_UpdateHeader()
        header.edgeID = edge.id
        header.session = edge.session
        header.round = round
        header.codec = codec
        header.exampleCount = examples
        header.payloadBytes = UInt64(announced ?? payload.count)
        let first = Flock_V1_UpdateChunk.with { $0.header = header }
        let response = try await connection.edge.submitUpdate(options: EdgeConnection.options(timeout: 30)) { writer in
            try await writer.write(first)
            var offset = 0
            repeat {
                let end = min(payload.count, offset + (1 << 20))
                try await writer.write(Flock_V1_UpdateChunk.with { $0.data = Data(payload[offset..<end]) })
                offset = end
            } while offset < payload.count
        }
        #expect(response.accepted)
    }

    static func fetch(_ connection: EdgeConnection, _ edge: Edge, hash: String) async throws -> [Float] {
        let request = Flock_V1_FetchModelRequest.with {
            $0.edgeID = edge.id
            $0.session = edge.session
            $0.modelHash = hash
        }
        let bytes = try await connection.edge.fetchModel(request, options: EdgeConnection.options(timeout: 30)) { response in
            var bytes = [UInt8]()
            for try await chunk in response.messages { bytes += chunk.data }
            return bytes
        }
        return try ModelFile.decode(bytes: bytes, source: "wire").file.parameters
    }

    @Test func badMessagesAreRefusedAndTheRoundStillAddsUpExactly() async throws {
        let fleet = Fleet()
        // Edge b sends nothing while a's refusals run, however long a loaded machine takes over them: no edge or
        // round may time out on the way.
        let address = try fleet.startServer([
            "--min-clients", "2", "--clients-per-round", "2", "--max-message-bytes", "2000000", "--heartbeat", "1",
            "--edge-timeout", "3600", "--round-timeout", "3600", "--secure-aggregation", "off",
            // Raw gRPC calls from this process, in plaintext on loopback.
            "--tls", "off",
        ])
        let connection = try EdgeConnection(server: try ServerAddress(parsing: address))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await connection.run() }
            defer { connection.close() }

            var edges = [Edge]()
            for id in ["wire-a", "wire-b"] {
                let reply = try await connection.edge.register(Flock_V1_RegisterRequest.with { $0.edgeID = id; $0.exampleCount = 10 })
                edges.append(Edge(id: id, session: reply.session))
            }
            #expect(await Self.code { _ = try await connection.edge.register(Flock_V1_RegisterRequest.with { $0.edgeID = "bad id/" }) } == .invalidArgument)
            var plans = [Flock_V1_RoundPlan]()
            for edge in edges {
                let reply = try await connection.edge.heartbeat(Flock_V1_HeartbeatRequest.with {
                    $0.edgeID = edge.id
                    $0.session = edge.session
                    $0.status = .idle
                })
                guard case .plan(let plan)? = reply.reply else { Issue.record("no plan for \(edge.id)"); return }
                plans.append(plan)
            }
            let round = plans[0].round
            let w0 = try await Self.fetch(connection, edges[0], hash: plans[0].modelHash)
            let n = w0.count
            let dA = (0..<n).map { Float($0 % 11) * 1e-3 }
            let dB = (0..<n).map { -Float($0 % 3) * 2e-3 }
            let a = edges[0], b = edges[1]
            let good = LittleEndianFloats.encode(dA)

            // Each refused with its own status, nothing accepted.
            var nan = dA
            nan[17] = .nan
            #expect(await Self.code { try await Self.submit(connection, a, round: round, payload: LittleEndianFloats.encode(nan)) } == .invalidArgument)
            #expect(await Self.code { try await Self.submit(connection, a, round: round, payload: Array(good.dropLast(4))) } == .invalidArgument)
            #expect(await Self.code { try await Self.submit(connection, a, round: round, announced: good.count - 8, payload: good) } == .invalidArgument)
            #expect(await Self.code { try await Self.submit(connection, a, round: round + 5, payload: good) } == .failedPrecondition)
            // A round id beyond Int64 is refused with the id as it was sent, not a clamped one.
            do {
                try await Self.submit(connection, a, round: 1 << 63, payload: good)
                Issue.record("an update for round 2^63 was accepted")
            } catch let error as RPCError {
                #expect(error.code == .failedPrecondition && error.message.contains("round 9223372036854775808 "), "\(error)")
            }
            #expect(await Self.code { try await Self.submit(connection, a, round: round, codec: "q8", payload: good) } == .invalidArgument)
            #expect(await Self.code { try await Self.submit(connection, Edge(id: a.id, session: "forged"), round: round, payload: good) } == .unauthenticated)
            #expect(await Self.code { try await Self.submit(connection, a, round: round, examples: 0, payload: good) } == .invalidArgument)
            // A single message above --max-message-bytes is refused as soon as its length prefix arrives, with
            // resourceExhausted and a message naming the limit and the option that raises it (not a stream reset).
            do {
                _ = try await connection.edge.submitUpdate(options: EdgeConnection.options(timeout: 30)) { writer in
                    try await writer.write(Flock_V1_UpdateChunk.with { $0.data = Data(count: 3_000_000) })
                }
                Issue.record("a message of 3 MB was accepted under --max-message-bytes 2000000")
            } catch let error as RPCError {
                #expect(error.code == .resourceExhausted, "an oversized message must be refused as too large: \(error)")
                #expect(error.message.contains("limit of 2000000 bytes") && error.message.contains("--max-message-bytes"), "\(error)")
            }
            // The connection is still good: the next calls on it go through.
            #expect(await Self.code { _ = try await Self.fetch(connection, a, hash: String(repeating: "0", count: 64)) } == .notFound)

            try await Self.submit(connection, a, round: round, examples: 30, payload: good)
            #expect(await Self.code { try await Self.submit(connection, a, round: round, examples: 30, payload: good) } == .alreadyExists)
            try await Self.submit(connection, b, round: round, examples: 10, payload: LittleEndianFloats.encode(dB))
            #expect(await Self.code { try await Self.submit(connection, b, round: round, payload: good) } == .failedPrecondition)

            // The next plan carries the new model: exactly w0 + (30 dA + 10 dB) / 40.
            let next = try await connection.edge.heartbeat(Flock_V1_HeartbeatRequest.with {
                $0.edgeID = a.id
                $0.session = a.session
                $0.status = .idle
            })
            guard case .plan(let plan2)? = next.reply else { Issue.record("no second plan"); return }
            #expect(plan2.round == round + 1)
            let w1 = try await Self.fetch(connection, a, hash: plan2.modelHash)
            var worst = 0.0
            for i in 0..<n {
                let expected = Double(w0[i]) + (30 * Double(dA[i]) + 10 * Double(dB[i])) / 40
                worst = max(worst, abs(Double(w1[i]) - expected))
            }
            #expect(worst <= 1e-6, "largest deviation from the direct computation: \(worst)")

            // The round's model is version 1 of the registry and production: the heartbeat says so, and its
            // signature (first chunk) verifies with the key the server announced at registration.
            #expect(next.deployment.productionVersion == 1 && next.deployment.productionHash == plan2.modelHash)
            #expect(next.deployment.comparedHash.isEmpty)
            let key = try await connection.edge.register(Flock_V1_RegisterRequest.with { $0.edgeID = "wire-c"; $0.exampleCount = 1 }).serverPublicKey
            let signature = try await connection.edge.fetchModel(Flock_V1_FetchModelRequest.with {
                $0.edgeID = a.id
                $0.session = a.session
                $0.modelHash = plan2.modelHash
                $0.deployment = true
            }) { response in
                var first = Data()
                for try await chunk in response.messages where chunk.offset == 0 { first = chunk.signature }
                return first
            }
            try ModelSignature.verify(
                signature: Hex.encode(Array(signature)), hash: plan2.modelHash, publicKey: try Ed25519.PublicKey(bytes: Hex.decode(key) ?? []))
            // Evidence: refused for an analysis the edge is not in, when malformed, and with a forged session.
            let hash = plan2.modelHash
            let report = Flock_V1_EvidenceReport(edge: a.id, session: a.session, analysis: 1, served: hash, compared: hash, comparison: PairedComparison())
            #expect(await Self.code { _ = try await connection.edge.reportEvidence(report) } == .failedPrecondition)
            var malformed = report
            malformed.comparedHash = "nope"
            #expect(await Self.code { _ = try await connection.edge.reportEvidence(malformed) } == .invalidArgument)
            var forged = report
            forged.session = "forged"
            #expect(await Self.code { _ = try await connection.edge.reportEvidence(forged) } == .unauthenticated)
            group.cancelAll()
        }
        let rounds = try fleet.rounds()
        #expect(rounds.first?["participants"] as? Int == 2 && rounds.first?["state"] as? String == "completed")
    }

    /// Runs `body` with a connection to `address`, closing it afterwards.
    static func connected<T: Sendable>(to address: String, _ body: @Sendable (EdgeConnection) async throws -> T) async throws -> T {
        let connection = try EdgeConnection(server: try ServerAddress(parsing: address))
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await connection.run(); return nil }
            defer { connection.close() }
            let result = try await body(connection)
            group.cancelAll()
            return result
        }
    }

    static func heartbeat(_ connection: EdgeConnection, _ edge: Edge) async throws -> Flock_V1_RoundPlan? {
        let reply = try await connection.edge.heartbeat(Flock_V1_HeartbeatRequest.with {
            $0.edgeID = edge.id
            $0.session = edge.session
            $0.status = .idle
        })
        if case .plan(let plan)? = reply.reply { return plan }
        return nil
    }

    static func register(_ connection: EdgeConnection, _ id: String, examples: UInt64) async throws -> Edge {
        let reply = try await connection.edge.register(Flock_V1_RegisterRequest.with { $0.edgeID = id; $0.exampleCount = examples })
        return Edge(id: id, session: reply.session)
    }

    @Test func anUpdateAcceptedBeforeTheServerIsKilledIsInTheRoundAfterTheRestart() async throws {
        let fleet = Fleet()
        let arguments = [
            "--min-clients", "2", "--clients-per-round", "2", "--heartbeat", "1", "--edge-timeout", "3600", "--round-timeout", "3600",
            "--secure-aggregation", "off", "--tls", "off",
        ]
        let first = try fleet.startServer(arguments)
        let (plan, w0, dA, dB) = try await Self.connected(to: first) { connection in
            let a = try await Self.register(connection, "keep-a", examples: 30)
            let b = try await Self.register(connection, "keep-b", examples: 10)
            let plan = try #require(try await Self.heartbeat(connection, a))
            #expect(try await Self.heartbeat(connection, b)?.round == plan.round)
            let w0 = try await Self.fetch(connection, a, hash: plan.modelHash)
            let dA = (0..<w0.count).map { Float($0 % 11) * 1e-3 }
            let dB = (0..<w0.count).map { -Float($0 % 3) * 2e-3 }
            try await Self.submit(connection, a, round: plan.round, examples: 30, payload: LittleEndianFloats.encode(dA))
            return (plan, w0, dA, dB)
        }
        // Acknowledged, so it must survive: kill -9 the server with the round half done and start it again.
        fleet.kill9("server")
        // The journal holds a's update in the clear (secure aggregation is off): it is the owner's alone.
        let journal = try FileManager.default.attributesOfItem(atPath: fleet.dataDirectory + "/open-round.journal")
        #expect(journal[.posixPermissions] as? Int == 0o600)
        let second = try fleet.startServer(arguments, name: "server-restarted")
        try await Self.connected(to: second) { connection in
            let a = try await Self.register(connection, "keep-a", examples: 30)
            let b = try await Self.register(connection, "keep-b", examples: 10)
            // a reported before the crash: no plan for it; b gets the same round and model again.
            #expect(try await Self.heartbeat(connection, a) == nil)
            let again = try #require(try await Self.heartbeat(connection, b))
            #expect(again.round == plan.round && again.modelHash == plan.modelHash)
            try await Self.submit(connection, b, round: plan.round, examples: 10, payload: LittleEndianFloats.encode(dB))
            let next = try #require(try await Self.heartbeat(connection, a))
            #expect(next.round == plan.round + 1)
            let w1 = try await Self.fetch(connection, a, hash: next.modelHash)
            var worst = 0.0
            for i in 0..<w0.count {
                worst = max(worst, abs(Double(w1[i]) - (Double(w0[i]) + (30 * Double(dA[i]) + 10 * Double(dB[i])) / 40)))
            }
            #expect(worst <= 1e-6, "largest deviation from the direct computation: \(worst)")
        }
        #expect(fleet.log("server-restarted").contains("reopened after a restart with 1 accepted updates"))
        let rounds = try fleet.rounds()
        #expect(rounds.first?["participants"] as? Int == 2 && rounds.first?["state"] as? String == "completed")
    }
}

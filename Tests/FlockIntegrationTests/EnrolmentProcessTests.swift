import FlockCore
import FlockEdge
import FlockTestSupport
import FlockWire
import Foundation
import GRPCCore
import Testing

/// Enrolled devices over mutual TLS, with real `flock-server serve` and `flock-edge` processes: tokens from
/// `admin enrol create`, `flock-edge enrol`, rounds that complete with enrolled edges only, and the attacks an
/// open server allowed (another device's id, no certificate, a spent or unknown token, a revoked device) refused
/// and changing nothing.
@Suite(.serialized) struct EnrolmentProcessTests {
    static func code(_ body: () async throws -> Void) async -> RPCError.Code? {
        do { try await body() } catch let error as RPCError { return error.code } catch { return nil }
        return nil
    }

    /// `admin enrol create --count N --json`: the tokens.
    static func tokens(_ fleet: Fleet, count: Int, expires: String = "1h") throws -> [String] {
        let result = try fleet.admin(["enrol", "create", "--count", String(count), "--expires", expires, "--label", "lab", "--json"])
        #expect(result.status == 0, "\(result.error)")
        let entries = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [[String: Any]] ?? []
        return entries.compactMap { $0["token"] as? String }
    }

    /// `flock-edge enrol` for `id` in its own state folder.
    static func enrol(_ fleet: Fleet, _ id: String, token: String, server: String, folder: String? = nil) throws -> TestData.ProcessResult {
        let file = fleet.folder + "/\(id).token"
        try token.write(toFile: file, atomically: true, encoding: .utf8)
        return try TestData.run(TestData.executable("flock-edge"), [
            "enrol", "--server", server, "--token-file", file, "--ca", fleet.dataDirectory + "/tls/ca.pem",
            "--state-dir", fleet.folder + "/" + (folder ?? id), "--id", id,
        ])
    }

    /// A raw edge-service connection presenting `id`'s enrolled identity (or none), trusting the server's CA.
    static func connection(_ fleet: Fleet, server: String, presenting id: String?) throws -> EdgeConnection {
        var tls = ClientTLS(trust: .certificateAuthority(path: fleet.dataDirectory + "/tls/ca.pem"))
        if let id {
            let folder = fleet.folder + "/\(id)/identity"
            tls = tls.presenting(try ClientTLS.Identity(certificateFile: folder + "/device.pem", keyFile: folder + "/device.key"))
        }
        return EdgeConnection(transport: try ServerAddress(parsing: server).clientTransport(tls: tls))
    }

    /// Call options that wait for the connection to be up (a loaded machine may take a while for a TLS handshake).
    static let options: CallOptions = {
        var options = EdgeConnection.options(timeout: 120)
        options.waitForReady = true
        return options
    }()

    static func register(_ connection: EdgeConnection, as id: String) async throws -> String {
        let request = Flock_V1_RegisterRequest.with {
            $0.edgeID = id
            $0.exampleCount = 10
        }
        return try await connection.edge.register(request, options: options) { try $0.message.session }
    }

    @Test func enrolledEdgesTrainAndNothingElseGetsIn() async throws {
        let fleet = Fleet()
        let parts = try fleet.partition(2, scheme: "iid")
        let server = try fleet.startServer(["--enrolment", "certificate", "--rounds", "2", "--min-clients", "2", "--heartbeat", "1"])
        let issued = try Self.tokens(fleet, count: 3)
        #expect(issued.count == 3)

        for (index, id) in ["edge-a", "edge-b"].enumerated() {
            let result = try Self.enrol(fleet, id, token: issued[index], server: server)
            #expect(result.status == 0, "\(result.error)")
            #expect(result.output.contains("enrolled as edge \(id)"))
            #expect(FileIO.isPrivateDirectory(fleet.folder + "/\(id)/identity"))
        }
        // A spent token enrols nobody else; an unknown one neither.
        let spent = try Self.enrol(fleet, "edge-c", token: issued[0], server: server)
        #expect(spent.status == 1 && spent.error.contains("used already"), "\(spent.error)")
        let unknown = try Self.enrol(fleet, "edge-c", token: "0123456789abcdef", server: server)
        #expect(unknown.status == 1 && unknown.error.contains("unknown enrolment token"), "\(unknown.error)")

        for (index, id) in ["edge-a", "edge-b"].enumerated() {
            try fleet.start(id, TestData.executable("flock-edge"), ["run", "--server", server, "--data", parts[index], "--state-dir", fleet.folder + "/" + id])
        }
        try fleet.wait("two enrolled edges complete two rounds", seconds: 240) {
            try fleet.rounds().filter { $0["state"] as? String == "completed" }.count == 2
        }

        // Attacks, each refused and changing nothing.
        let anonymous = try Self.connection(fleet, server: server, presenting: nil)
        let asA = try Self.connection(fleet, server: server, presenting: "edge-a")
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await anonymous.run() }
            group.addTask { try await asA.run() }
            defer {
                anonymous.close()
                asA.close()
            }
            // No certificate: nothing but Enrol.
            #expect(await Self.code { _ = try await Self.register(anonymous, as: "edge-z") } == .unauthenticated)
            #expect(await Self.code { _ = try await Self.register(anonymous, as: "edge-a") } == .unauthenticated)
            // Edge A's certificate cannot speak for edge B, in any call.
            #expect(await Self.code { _ = try await Self.register(asA, as: "edge-b") } == .permissionDenied)
            let heartbeat = Flock_V1_HeartbeatRequest.with {
                $0.edgeID = "edge-b"
                $0.session = "anything"
            }
            #expect(await Self.code { _ = try await asA.edge.heartbeat(heartbeat, options: Self.options) { try $0.message } } == .permissionDenied)
            let keys = Flock_V1_SecAggKeys.with { $0.edgeID = "edge-b" }
            #expect(await Self.code { _ = try await asA.edge.advertiseKeys(keys, options: Self.options) { try $0.message } } == .permissionDenied)
        }
        let clients = try fleet.adminJSON("clients") as? [[String: Any]] ?? []
        #expect(Set(clients.compactMap { $0["edge_id"] as? String }) == ["edge-a", "edge-b"])

        // Revoked: refused at its next call, listed as revoked, and its id cannot come back.
        let revoke = try fleet.admin(["devices", "revoke", "edge-b"])
        #expect(revoke.status == 0, "\(revoke.error)")
        // The running edge hears it at its next call and stops, saying why.
        try fleet.wait("the revoked edge stops", seconds: 60) { !fleet.isRunning("edge-b") }
        #expect(fleet.log("edge-b").contains("revoked"), "\(fleet.log("edge-b").suffix(500))")
        #expect(fleet.isRunning("edge-a"))
        let asB = try Self.connection(fleet, server: server, presenting: "edge-b")
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await asB.run() }
            defer { asB.close() }
            #expect(await Self.code { _ = try await Self.register(asB, as: "edge-b") } == .permissionDenied)
        }
        let devices = try fleet.admin(["devices", "list", "--json"])
        let listed = try JSONSerialization.jsonObject(with: Data(devices.output.utf8)) as? [[String: Any]] ?? []
        #expect(listed.count == 2)
        #expect(listed.first { $0["edge"] as? String == "edge-b" }?["revoked"] is String)
        #expect(listed.first { $0["edge"] as? String == "edge-a" }?["revoked"] == nil)
        let again = try Self.enrol(fleet, "edge-b", token: issued[2], server: server, folder: "edge-b-again")
        #expect(again.status == 1 && again.error.contains("was revoked"), "\(again.error)")

        // Every enrolment and the revocation are in the audit log.
        let audit = try fleet.admin(["audit", "--json"])
        #expect(audit.output.contains("devices.enrol") && audit.output.contains("devices.revoke") && audit.output.contains("enrol.create"))
    }

    @Test func anOpenServerSaysSoAndACertificateServerWithoutTLSIsRefused() throws {
        let fleet = Fleet()
        try fleet.startServer(["--enrolment", "open"])
        #expect(fleet.log("server").contains("enrolment open"))
        let refused = try TestData.run(TestData.executable("flock-server"), [
            "serve", "--data-dir", fleet.folder + "/other", "--tls", "off", "--enrolment", "certificate",
        ])
        #expect(refused.status == 64 && refused.error.contains("need TLS"), "\(refused.error)")
        // Enrolment always uses TLS, with the server's CA or a pinned certificate.
        for extra in [[], ["--tls", "off"]] {
            let usage = try TestData.run(TestData.executable("flock-edge"), ["enrol", "--server", "127.0.0.1:7070", "--token", "t"] + extra)
            #expect(usage.status == 64 && usage.error.contains("--ca FILE"), "\(usage.error)")
        }
    }
}

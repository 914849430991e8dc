import FlockCore
import FlockCrypto
import FlockServer
import FlockTestSupport
import FlockWire
import Foundation
import GRPCCore
import Testing

/// Admin tokens with roles, through the built binaries against a real server over TLS: a viewer reads but cannot act,
/// revoked and missing tokens are refused, tokens are kept hashed, and operator actions land in the audit log
/// with the label of the token that made them.
@Suite(.serialized) struct AdminRoleTests {
    /// `admin ARGS --server S --token-file FILE` as the holder of one token.
    func admin(_ fleet: Fleet, server: String, token: String, _ arguments: [String]) throws -> TestData.ProcessResult {
        try TestData.run(
            TestData.executable("flock-server"), ["admin"] + arguments + ["--server", server, "--token-file", token, "--data-dir", fleet.dataDirectory])
    }

    /// Creates a token with the server's first (operator) token; returns the file that holds it and its id.
    func createToken(_ fleet: Fleet, role: String, label: String) throws -> (file: String, id: String, token: String) {
        let created = try fleet.admin(["tokens", "create", "--role", role, "--label", label, "--json"])
        #expect(created.status == 0, "\(created.error)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(created.output.utf8)) as? [String: Any])
        let token = try #require(object["token"] as? String)
        let id = try #require(object["id"] as? String)
        #expect(object["role"] as? String == role && object["label"] as? String == label && object["revoked"] is NSNull)
        let file = fleet.folder + "/\(label).token"
        try (token + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        return (file, id, token)
    }

    /// The production alias's moves, from the registry.
    func productionMoves(_ fleet: Fleet) throws -> [[String: Any]] {
        let result = try TestData.run(
            TestData.executable("flock-server"), ["registry", "history", "--alias", "production", "--json", "--data-dir", fleet.dataDirectory])
        return try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [[String: Any]] ?? []
    }

    /// The audit log as `admin audit --json` shows it to `token`.
    func audit(_ fleet: Fleet, server: String, token: String) throws -> [[String: Any]] {
        let result = try admin(fleet, server: server, token: token, ["audit", "--json"])
        #expect(result.status == 0, "\(result.error)")
        return try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [[String: Any]] ?? []
    }

    @Test func aViewerReadsButCannotActAndOperatorActionsAreAudited() async throws {
        let fleet = Fleet()
        let data = try fleet.slice("edge-data", from: 0, rows: 1000)
        let server = try fleet.startServer(["--rounds", "2", "--min-clients", "1", "--heartbeat", "0.5", "--wait-for-start"])
        let ca = fleet.dataDirectory + "/tls/ca.pem"
        try fleet.startEdge("edge-0", server: server, data: data, extra: ["--ca", ca])
        let viewer = try createToken(fleet, role: "viewer", label: "alice-viewer")
        let operatorToken = try createToken(fleet, role: "operator", label: "bob-operator")

        // The viewer reads status, clients and rounds.
        try fleet.wait("edge-0 registered") {
            try admin(fleet, server: server, token: viewer.file, ["clients", "--json"]).output.contains("edge-0")
        }
        let status = try admin(fleet, server: server, token: viewer.file, ["status", "--json"])
        #expect(status.status == 0 && status.output.contains("\"state\":\"idle\""), "\(status.output) \(status.error)")
        #expect(try admin(fleet, server: server, token: viewer.file, ["rounds"]).status == 0)

        // ... but cannot start training: refused, saying what to do, and nothing moves.
        let start = try admin(fleet, server: server, token: viewer.file, ["start"])
        #expect(start.status == 1 && start.error.contains("needs an operator token") && start.error.contains("tokens create --role operator"), "\(start.error)")
        #expect(try fleet.status()["state"] as? String == "idle")
        #expect(try fleet.status()["completed_rounds"] as? Int == 0)

        // The operator starts it; two rounds run.
        #expect(try admin(fleet, server: server, token: operatorToken.file, ["start"]).status == 0)
        try fleet.wait("2 rounds") { try fleet.status()["completed_rounds"] as? Int == 2 }
        try fleet.wait("a production version") { try !productionMoves(fleet).isEmpty }
        let production = try productionMoves(fleet)
        let other = (production.last?["version"] as? Int) == 1 ? 2 : 1

        // A viewer's promote and pause are refused as permission denied, over the wire too, and change nothing.
        let promote = try admin(fleet, server: server, token: viewer.file, ["promote", String(other), "--force", "--reason", "trying"])
        #expect(promote.status == 1 && promote.error.contains("needs an operator token"), "\(promote.error)")
        #expect(try admin(fleet, server: server, token: viewer.file, ["pause"]).status == 1)
        let codes = try await wireCodes(server: ServerAddress(parsing: server), ca: ca, token: viewer.token)
        #expect(codes.control == .permissionDenied && codes.production == .permissionDenied && codes.status == nil, "\(codes)")
        #expect(try productionMoves(fleet).count == production.count)

        // The operator's promote goes through and is audited under the operator token's label.
        let promoted = try admin(fleet, server: server, token: operatorToken.file, ["promote", String(other), "--force", "--reason", "audit check"])
        #expect(promoted.status == 0, "\(promoted.error)")
        #expect(try productionMoves(fleet).last?["version"] as? Int == other)

        let events = try audit(fleet, server: server, token: viewer.file)
        let actions = events.map { "\($0["action"] as? String ?? "")/\($0["outcome"] as? String ?? "")" }
        let who = { (event: [String: Any]) in (event["who"] as? [String: Any])?["label"] as? String }
        let started = try #require(events.first { $0["action"] as? String == "start" && $0["outcome"] as? String == "ok" }, "\(actions)")
        #expect(who(started) == "bob-operator" && (started["who"] as? [String: Any])?["id"] as? String == operatorToken.id)
        let promotion = try #require(events.first { $0["action"] as? String == "promote" && $0["outcome"] as? String == "ok" }, "\(actions)")
        #expect(who(promotion) == "bob-operator")
        #expect(promotion["arguments"] as? [String: String] == ["version": String(other), "reason": "audit check", "force": "true"])
        #expect(promotion["time"] is String)
        // The viewer's attempts are there too, refused; so is the creation of both tokens, by the first token.
        #expect(events.contains { $0["action"] as? String == "Control" && $0["outcome"] as? String == "refused" && who($0) == "alice-viewer" }, "\(actions)")
        #expect(events.filter { $0["action"] as? String == "tokens.create" && ($0["who"] as? [String: Any])?["id"] as? String == "admin" }.count == 2)
        let table = try admin(fleet, server: server, token: viewer.file, ["audit", "--limit", "1"])
        #expect(table.status == 0 && table.output.split(separator: "\n").count == 2 && table.output.contains("promote"), "\(table.output)")

        // The audit log and the token list are the owner's alone, JSON lines and JSON; neither holds a token.
        let auditPath = fleet.dataDirectory + "/" + AuditLog.fileName
        let tokensPath = fleet.dataDirectory + "/" + AdminTokenStore.fileName
        for path in [auditPath, tokensPath] {
            #expect(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int == 0o600, "\(path)")
            let text = try String(contentsOfFile: path, encoding: .utf8)
            #expect(!text.contains(viewer.token) && !text.contains(operatorToken.token), "\(path) holds a token")
        }
        let stored = try String(contentsOfFile: tokensPath, encoding: .utf8)
        #expect(stored.contains(SHA256.hash(Array(viewer.token.utf8)).hex) && stored.contains(SHA256.hash(Array(operatorToken.token.utf8)).hex))
        let lines = try String(contentsOfFile: auditPath, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == events.count && lines.allSatisfy { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) is [String: Any] })

        // Tokens are operator business: a viewer cannot list or create them.
        #expect(try admin(fleet, server: server, token: viewer.file, ["tokens", "list"]).error.contains("needs an operator token"))
        let listed = try admin(fleet, server: server, token: operatorToken.file, ["tokens", "list", "--json"])
        #expect(listed.status == 0 && !listed.output.contains(viewer.token) && listed.output.contains("alice-viewer"))

        // Revoked: the next call is refused, saying so; the last active operator token cannot be revoked.
        #expect(try admin(fleet, server: server, token: operatorToken.file, ["tokens", "revoke", viewer.id]).status == 0)
        let afterRevoke = try admin(fleet, server: server, token: viewer.file, ["status"])
        #expect(afterRevoke.status == 1 && afterRevoke.error.contains("was revoked"), "\(afterRevoke.error)")
        #expect(try await wireCodes(server: ServerAddress(parsing: server), ca: ca, token: viewer.token).status == .unauthenticated)
        #expect(try admin(fleet, server: server, token: operatorToken.file, ["tokens", "revoke", "admin"]).status == 0)
        let last = try admin(fleet, server: server, token: operatorToken.file, ["tokens", "revoke", operatorToken.id])
        #expect(last.status == 1 && last.error.contains("last active operator token"), "\(last.error)")

        // No token at all, and a token that is not this server's: unauthenticated.
        #expect(try await wireCodes(server: ServerAddress(parsing: server), ca: ca, token: nil).status == .unauthenticated)
        #expect(try await wireCodes(server: ServerAddress(parsing: server), ca: ca, token: SecureRandom.token()).status == .unauthenticated)

        // Across a restart the roles, the revocations and the log stay.
        #expect(try admin(fleet, server: server, token: operatorToken.file, ["stop"]).status == 0)
        fleet.processes["server"]?.waitUntilExit()
        let again = try fleet.startServer(["--rounds", "2", "--min-clients", "1", "--heartbeat", "0.5"])
        #expect(try admin(fleet, server: again, token: viewer.file, ["status"]).error.contains("was revoked"))
        #expect(try fleet.admin(["status"]).error.contains("was revoked"))
        #expect(try admin(fleet, server: again, token: operatorToken.file, ["status"]).status == 0)
        #expect(try audit(fleet, server: again, token: operatorToken.file).contains { $0["action"] as? String == "stop" })
    }

    /// The gRPC status of a status call, a control (pause) call and a production (pin) call made with `token`
    /// (no `authorization` at all when nil) over TLS trusting `ca`; nil for a call that succeeded.
    func wireCodes(
        server: ServerAddress, ca: String, token: String?
    ) async throws -> (status: RPCError.Code?, control: RPCError.Code?, production: RPCError.Code?) {
        try await AdminClient.with(server: server, token: token ?? "", tls: ClientTLS(trust: .certificateAuthority(path: ca))) {
            client, metadata, defaults in
            // This test process runs many tests at once, some of which block threads while they wait for
            // processes: give the connection time to come up rather than the command line's 15 s.
            var options = defaults
            options.timeout = .seconds(120)
            options.waitForReady = true
            let sent: Metadata = token == nil ? [:] : metadata
            func code(_ call: () async throws -> Void) async -> RPCError.Code? {
                do { try await call(); return nil } catch let error as RPCError { return error.code } catch { return .unknown }
            }
            let status = await code { _ = try await client.status(Flock_V1_StatusRequest(), metadata: sent, options: options) }
            var pause = Flock_V1_ControlRequest()
            pause.command = .pause
            let control = await code { _ = try await client.control(pause, metadata: sent, options: options) }
            var pin = Flock_V1_ProductionChange()
            pin.action = .pin
            pin.reference = "1"
            pin.reason = "wire check"
            let production = await code { _ = try await client.changeProduction(pin, metadata: sent, options: options) }
            return (status, control, production)
        }
    }
}

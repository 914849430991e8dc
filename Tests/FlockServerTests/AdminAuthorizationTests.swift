import FlockCore
import FlockCrypto
import FlockServer
import FlockTestSupport
import FlockWire
import Foundation
import GRPCCore
import Synchronization
import Testing

/// The admin service's one authorisation table and interceptor, the token store behind it, and the audit log,
/// on real files.
struct AdminAuthorizationTests {
    /// A data directory with the server's first token, a store and an audit log.
    struct Server {
        let folder = TestData.temporaryFolder()
        let first: String
        let tokens: AdminTokenStore
        let audit: AuditLog
        var authorization: AdminAuthorization { AdminAuthorization(tokens: tokens, audit: audit) }

        init() throws {
            let (initial, created) = try AdminToken.loadOrCreate(inFolder: folder)
            #expect(created)
            first = try String(contentsOfFile: folder + "/" + AdminToken.tokenFileName, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            tokens = try AdminTokenStore(directory: folder, initial: initial)
            audit = AuditLog(directory: folder)
        }
    }

    static func bearer(_ token: String) -> Metadata { ["authorization": "Bearer \(token)"] }

    static func code(_ body: () throws(RPCError) -> AdminCaller) -> RPCError.Code? {
        do { _ = try body(); return nil } catch { return error.code }
    }

    /// Adding an admin method without giving it a role fails here: the table must name every method of the service.
    @Test func everyAdminMethodHasARole() {
        let table = Set(AdminAuthorization.requiredRoles.keys)
        let service = Set(Flock_V1_AdminService.Method.descriptors)
        #expect(service.subtracting(table).isEmpty, "admin methods without a role: \(service.subtracting(table).map(\.method).sorted())")
        #expect(table.subtracting(service).isEmpty, "roles for methods the service does not have: \(table.subtracting(service).map(\.method))")
        // Reads are for viewers; everything that changes the server is for operators.
        #expect(AdminAuthorization.requiredRoles[Flock_V1_AdminService.Method.Status.descriptor] == .viewer)
        #expect(AdminAuthorization.requiredRoles[Flock_V1_AdminService.Method.ListAudit.descriptor] == .viewer)
        for method in [
            Flock_V1_AdminService.Method.Control.descriptor, Flock_V1_AdminService.Method.ChangeProduction.descriptor,
            Flock_V1_AdminService.Method.CreateAdminToken.descriptor, Flock_V1_AdminService.Method.RevokeAdminToken.descriptor,
            Flock_V1_AdminService.Method.ListAdminTokens.descriptor,
        ] {
            #expect(AdminAuthorization.requiredRoles[method] == .operator, "\(method.method)")
        }
    }

    @Test func aMethodMissingFromTheTableIsRefusedEvenToAnOperator() throws {
        let server = try Server()
        let unlisted = MethodDescriptor(fullyQualifiedService: Flock_V1_AdminService.descriptor.fullyQualifiedService, method: "DropEverything")
        do {
            _ = try server.authorization.authorize(method: unlisted, metadata: Self.bearer(server.first))
            Issue.record("an unlisted method was allowed")
        } catch {
            #expect(error.code == .permissionDenied && error.message.contains("DropEverything has no role"), "\(error)")
        }
        // The same token may call a listed operator method.
        let caller = try server.authorization.authorize(method: Flock_V1_AdminService.Method.Control.descriptor, metadata: Self.bearer(server.first))
        #expect(caller == AdminCaller(tokenID: AdminTokenStore.initialID, label: AdminToken.tokenFileName, role: .operator))
    }

    @Test func refusalsSayWhyAndAViewerAttemptIsAudited() throws {
        let server = try Server()
        let control = Flock_V1_AdminService.Method.Control.descriptor
        let status = Flock_V1_AdminService.Method.Status.descriptor
        let auth = server.authorization
        #expect(Self.code { () throws(RPCError) in try auth.authorize(method: status, metadata: [:]) } == .unauthenticated)
        #expect(Self.code { () throws(RPCError) in try auth.authorize(method: status, metadata: ["authorization": "Basic \(server.first)"]) } == .unauthenticated)
        #expect(Self.code { () throws(RPCError) in try auth.authorize(method: status, metadata: Self.bearer("")) } == .unauthenticated)
        #expect(Self.code { () throws(RPCError) in try auth.authorize(method: status, metadata: Self.bearer(SecureRandom.token())) } == .unauthenticated)
        let longToken = String(repeating: "a", count: 600)
        #expect(Self.code { () throws(RPCError) in try auth.authorize(method: status, metadata: Self.bearer(longToken)) } == .unauthenticated)

        let (viewer, entry) = try server.tokens.create(role: .viewer, label: "dashboards")
        #expect(try auth.authorize(method: status, metadata: Self.bearer(viewer)) == AdminCaller(tokenID: entry.id, label: "dashboards", role: .viewer))
        do {
            _ = try auth.authorize(method: control, metadata: Self.bearer(viewer))
            Issue.record("a viewer may call Control")
        } catch {
            #expect(error.code == .permissionDenied && error.message.contains("needs an operator token"), "\(error)")
        }
        let refused = try #require(try server.audit.events().last)
        #expect(refused.actor == AuditEvent.Actor(kind: .token, id: entry.id, label: "dashboards"))
        #expect(refused.action == "Control" && refused.outcome == .refused)

        _ = try server.tokens.revoke(id: entry.id)
        do {
            _ = try auth.authorize(method: status, metadata: Self.bearer(viewer))
            Issue.record("a revoked token was accepted")
        } catch {
            #expect(error.code == .unauthenticated && error.message.contains("was revoked"), "\(error)")
        }
    }

    @Test func theInterceptorRunsTheHandlerWithTheCaller() async throws {
        let server = try Server()
        let context = ServerContext(
            descriptor: Flock_V1_AdminService.Method.Status.descriptor, remotePeer: "ipv4:127.0.0.1:1", localPeer: "ipv4:127.0.0.1:2",
            cancellation: ServerContext.RPCCancellationHandle())
        let request = StreamingServerRequest(single: ServerRequest(metadata: Self.bearer(server.first), message: Flock_V1_StatusRequest()))
        let seen = Mutex<[String]>([])
        let _: StreamingServerResponse<Flock_V1_StatusResponse> = try await server.authorization.intercept(request: request, context: context) {
            _, _ in
            seen.withLock { $0.append(AdminCaller.current?.label ?? "no caller") }
            return StreamingServerResponse(single: ServerResponse(message: Flock_V1_StatusResponse()))
        }
        #expect(AdminCaller.current == nil)
        // A call to another service passes through untouched (its own checks apply), with no admin caller.
        var edge = context
        edge.descriptor = Flock_V1_EdgeService.Method.Register.descriptor
        let _: StreamingServerResponse<Flock_V1_StatusResponse> = try await server.authorization.intercept(
            request: StreamingServerRequest(single: ServerRequest(metadata: [:], message: Flock_V1_StatusRequest())), context: edge
        ) { _, _ in
            seen.withLock { $0.append(AdminCaller.current?.label ?? "no caller") }
            return StreamingServerResponse(single: ServerResponse(message: Flock_V1_StatusResponse()))
        }
        #expect(seen.withLock { $0 } == [AdminToken.tokenFileName, "no caller"])
    }

    @Test func tokensAreKeptHashedAndSurviveAReopen() throws {
        let server = try Server()
        let (token, entry) = try server.tokens.create(role: .operator, label: "ci")
        let path = server.folder + "/" + AdminTokenStore.fileName
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(!text.contains(token) && !text.contains(server.first))
        #expect(text.contains(SHA256.hash(Array(token.utf8)).hex))
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int == 0o600)
        _ = try server.tokens.revoke(id: AdminTokenStore.initialID)

        let (initial, created) = try AdminToken.loadOrCreate(inFolder: server.folder)
        #expect(!created)
        let reopened = try AdminTokenStore(directory: server.folder, initial: initial)
        #expect(reopened.list().map(\.id) == [AdminTokenStore.initialID, entry.id])
        #expect(reopened.lookup(server.first) == .revoked(reopened.list()[0]))
        #expect(reopened.lookup(token) == .accepted(AdminCaller(tokenID: entry.id, label: "ci", role: .operator)))

        // A new first token (admin.token.sha256 deleted, the server started again) is active again.
        try FileManager.default.removeItem(atPath: server.folder + "/" + AdminToken.hashFileName)
        let (fresh, issued) = try AdminToken.loadOrCreate(inFolder: server.folder)
        #expect(issued)
        let rotated = try AdminTokenStore(directory: server.folder, initial: fresh)
        let secret = try String(contentsOfFile: server.folder + "/" + AdminToken.tokenFileName, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(rotated.lookup(server.first) == .unknown)
        if case .accepted(let caller) = rotated.lookup(secret) { #expect(caller.tokenID == AdminTokenStore.initialID) } else {
            Issue.record("the new first token is not accepted")
        }
    }

    @Test func theLastOperatorTokenStaysAndLabelsAreBounded() throws {
        let server = try Server()
        #expect(throws: ServeRefusal.self) { try server.tokens.revoke(id: AdminTokenStore.initialID) }
        #expect(throws: ServeRefusal.self) { try server.tokens.revoke(id: "k000000000000") }
        #expect(throws: ServeRefusal.self) { try server.tokens.create(role: .viewer, label: String(repeating: "x", count: 129)) }
        #expect(throws: ServeRefusal.self) { try server.tokens.create(role: .viewer, label: "two\nlines") }
        let (_, viewer) = try server.tokens.create(role: .viewer, label: "")
        // A viewer does not keep an operator in: the first token is still the last operator.
        #expect(throws: ServeRefusal.self) { try server.tokens.revoke(id: AdminTokenStore.initialID) }
        _ = try server.tokens.revoke(id: viewer.id)
        #expect(throws: ServeRefusal.self) { try server.tokens.revoke(id: viewer.id) }
        #expect(server.tokens.list().count == 2)
    }

    @Test func theAuditLogAppendsJSONLinesAndReadsThemBack() async throws {
        let server = try Server()
        let log = server.audit
        #expect(try log.events().isEmpty)
        let caller = AdminCaller(tokenID: "k1", label: "alice", role: .operator)
        let answer = try await AdminCaller.$current.withValue(caller) {
            try await log.recording("promote", arguments: ["version": "3", "reason": "better"], detail: { "production is now v\($0)" }) { 3 }
        }
        #expect(answer == 3)
        await #expect(throws: RPCError.self) {
            try await log.recording("pin", arguments: ["version": "9"]) { () async throws -> Int in
                throw RPCError(code: .notFound, message: "no version 9")
            }
        }
        await #expect(throws: CoreError.self) {
            try await log.recording("stop", actor: .device("edge-7")) { () async throws -> Int in throw CoreError(.io, "disk full") }
        }
        try log.record(AuditEvent(actor: .server, action: "start", outcome: .ok))

        let events = try log.events()
        #expect(events.map(\.action) == ["promote", "pin", "stop", "start"])
        #expect(events.map(\.outcome) == [.ok, .refused, .failed, .ok])
        #expect(events[0].actor == caller.actor && events[0].arguments == ["version": "3", "reason": "better"])
        #expect(events[0].detail == "production is now v3" && events[1].detail == "no version 9")
        #expect(events[1].actor == .server && events[2].actor == .device("edge-7"))
        #expect(try log.events(limit: 2).map(\.action) == ["stop", "start"])
        #expect(try FileManager.default.attributesOfItem(atPath: log.path)[.posixPermissions] as? Int == 0o600)

        // Each line is one JSON object with the documented keys; times round-trip to the millisecond.
        let lines = try String(contentsOfFile: log.path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 4)
        let first = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(Set(first.keys) == ["time", "who", "action", "arguments", "outcome", "detail"])
        #expect(abs(events[0].time.timeIntervalSinceNow) < 60)

        // A crash mid-append leaves a torn last line: it is skipped and reported, and the next record starts a line
        // of its own (in a new process, as after the crash).
        let handle = try #require(FileHandle(forWritingAtPath: log.path))
        handle.seekToEndOfFile()
        handle.write(Data("{\"time\":\"2026-".utf8))
        try handle.close()
        #expect(try log.read() == AuditLog.Contents(events: events, damagedLines: [5]))
        let restarted = AuditLog(directory: server.folder)
        try restarted.record(AuditEvent(actor: .server, action: "stop", outcome: .ok))
        let after = try restarted.read()
        #expect(after.events.map(\.action) == ["promote", "pin", "stop", "start", "stop"] && after.damagedLines == [5])
    }
}

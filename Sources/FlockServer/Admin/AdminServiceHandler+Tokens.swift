import FlockWire
import Foundation
import GRPCCore

extension AdminServiceHandler {
    /// Issues an admin token with a role; the reply holds the token, shown this once.
    public func createAdminToken(
        request: ServerRequest<Flock_V1_CreateAdminTokenRequest>, context: ServerContext
    ) async throws -> ServerResponse<Flock_V1_CreateAdminTokenResponse> {
        let message = request.message
        let arguments = ["role": AdminRole(message.role)?.rawValue ?? "unspecified", "label": message.label]
        typealias Created = (token: String, entry: AdminTokenStore.Entry)
        let created: Created = try await audit.recording("tokens.create", arguments: arguments, detail: { (created: Created) in "created token \(created.entry.id)" }) {
            () async throws -> Created in
            guard let role = AdminRole(message.role) else {
                throw RPCError(code: .invalidArgument, message: "role: viewer or operator")
            }
            return try await refusing { () async throws(ServeRefusal) -> Created in try tokens.create(role: role, label: message.label) }
        }
        var response = Flock_V1_CreateAdminTokenResponse()
        response.token = created.token
        response.info = Flock_V1_AdminTokenInfo(created.entry)
        return ServerResponse(message: response)
    }

    /// Every admin token, without secrets.
    public func listAdminTokens(
        request: ServerRequest<Flock_V1_ListAdminTokensRequest>, context: ServerContext
    ) async throws -> ServerResponse<Flock_V1_ListAdminTokensResponse> {
        var response = Flock_V1_ListAdminTokensResponse()
        response.tokens = tokens.list().map(Flock_V1_AdminTokenInfo.init)
        return ServerResponse(message: response)
    }

    /// Revokes an admin token: it is refused from its next call on.
    public func revokeAdminToken(
        request: ServerRequest<Flock_V1_RevokeAdminTokenRequest>, context: ServerContext
    ) async throws -> ServerResponse<Flock_V1_AdminTokenInfo> {
        let id = request.message.id
        let entry = try await audit.recording("tokens.revoke", arguments: ["id": String(id.prefix(64))], detail: { "revoked token \($0.id)" }) {
            try await refusing { () async throws(ServeRefusal) in try tokens.revoke(id: id) }
        }
        return ServerResponse(message: Flock_V1_AdminTokenInfo(entry))
    }

    /// The audit log, oldest first.
    public func listAudit(
        request: ServerRequest<Flock_V1_ListAuditRequest>, context: ServerContext
    ) async throws -> ServerResponse<Flock_V1_ListAuditResponse> {
        let limit = request.message.limit
        let contents: AuditLog.Contents
        do {
            contents = try audit.read(limit: limit == 0 ? nil : Int(limit))
        } catch {
            throw RPCError(code: .unavailable, message: error.message)
        }
        var response = Flock_V1_ListAuditResponse()
        response.events = contents.events.map(Flock_V1_AuditRecord.init)
        response.damagedLines = contents.damagedLines.map { UInt32(clamping: $0) }
        return ServerResponse(message: response)
    }
}

extension AdminRole {
    /// The role a wire role names; nil for none.
    public init?(_ wire: Flock_V1_AdminRole) {
        switch wire {
        case .viewer: self = .viewer
        case .operator: self = .operator
        default: return nil
        }
    }

    /// The wire form.
    public var wire: Flock_V1_AdminRole {
        switch self {
        case .viewer: .viewer
        case .operator: .operator
        }
    }
}

extension Flock_V1_AdminTokenInfo {
    /// The wire form of a token's entry (no hash, no secret).
    public init(_ entry: AdminTokenStore.Entry) {
        self.init()
        id = entry.id
        role = entry.role.wire
        label = entry.label
        createdUnix = Int64(entry.created.timeIntervalSince1970.rounded(.down))
        revokedUnix = entry.revoked.map { Int64($0.timeIntervalSince1970.rounded(.down)) } ?? 0
    }
}

extension Flock_V1_AuditRecord {
    /// The wire form of an audit event.
    public init(_ event: AuditEvent) {
        self.init()
        timeUnixMs = Int64((event.time.timeIntervalSince1970 * 1000).rounded())
        whoKind = event.actor.kind.rawValue
        whoID = event.actor.id
        whoLabel = event.actor.label
        action = event.action
        arguments = event.arguments
        outcome = event.outcome.rawValue
        detail = event.detail ?? ""
    }
}

extension AuditEvent {
    /// The event a wire record carries; unknown kinds and outcomes are kept as `server` and `failed`.
    public init(_ record: Flock_V1_AuditRecord) {
        self.init(
            time: Date(timeIntervalSince1970: Double(record.timeUnixMs) / 1000),
            actor: Actor(kind: Actor.Kind(rawValue: record.whoKind) ?? .server, id: record.whoID, label: record.whoLabel),
            action: record.action, arguments: record.arguments, outcome: Outcome(rawValue: record.outcome) ?? .failed,
            detail: record.detail.isEmpty ? nil : record.detail)
    }
}

extension Flock_V1_ControlCommand {
    /// The audit log's name for the command.
    var auditName: String {
        switch self {
        case .start: "start"
        case .pause: "pause"
        case .resume: "resume"
        case .stop: "stop"
        default: "control"
        }
    }
}

extension Flock_V1_ProductionAction {
    /// The audit log's name for the action.
    var auditName: String {
        switch self {
        case .promote: "promote"
        case .rollback: "rollback"
        case .pin: "pin"
        case .unpin: "unpin"
        default: "production"
        }
    }
}

extension Flock_V1_ProductionChange {
    /// The change's arguments as the audit log records them (bounded as the server bounds them).
    var auditArguments: [String: String] {
        var arguments = ["reason": String(reason.prefix(1000))]
        if !reference.isEmpty {
            arguments["version"] = String(reference.prefix(128))
        } else if version != 0 {
            arguments["version"] = String(version)
        }
        if force { arguments["force"] = "true" }
        return arguments
    }
}

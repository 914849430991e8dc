import FlockCore
import FlockWire
import Foundation

extension AdminClient {
    private static let dayTime = Date.ISO8601FormatStyle(timeZone: .gmt)

    private static func time(unix: Int64) -> String { Date(timeIntervalSince1970: Double(unix)).formatted(dayTime) }

    private static func roleName(_ role: Flock_V1_AdminRole) -> String { AdminRole(role)?.rawValue ?? "unknown" }

    /// `admin tokens list` as a table (no secrets: the server has none to give).
    public static func render(_ tokens: [Flock_V1_AdminTokenInfo]) -> String {
        TextTable(
            header: ["id", "role", "label", "created", "revoked"],
            rows: tokens.map { [$0.id, roleName($0.role), $0.label, time(unix: $0.createdUnix), $0.revokedUnix == 0 ? "-" : time(unix: $0.revokedUnix)] }
        ).render()
    }

    /// `admin tokens list --json`: one object per token, `{"id", "role", "label", "created", "revoked"}` (times in
    /// ISO 8601 UTC; `revoked` null while active).
    public static func json(_ tokens: [Flock_V1_AdminTokenInfo]) -> String { JSONOutput.line(tokens.map { TokenJSON($0, token: nil) }) }

    /// `admin tokens revoke --json`: the token's object.
    public static func json(_ token: Flock_V1_AdminTokenInfo) -> String { JSONOutput.line(TokenJSON(token, token: nil)) }

    /// `admin tokens create --json`: the token's object with the token itself under `token`.
    public static func json(_ created: Flock_V1_CreateAdminTokenResponse) -> String {
        JSONOutput.line(TokenJSON(created.info, token: created.token))
    }

    /// `admin audit` as a table, oldest first.
    public static func render(_ events: [AuditEvent]) -> String {
        TextTable(
            header: ["time", "who", "action", "arguments", "outcome", "detail"],
            rows: events.map { event in
                let who = event.actor.kind == .token
                    ? event.actor.id + (event.actor.label.isEmpty ? "" : " (\(event.actor.label))")
                    : "\(event.actor.kind.rawValue) \(event.actor.id)"
                let arguments = event.arguments.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                return [event.time.formatted(dayTime), who, event.action, arguments, event.outcome.rawValue, event.detail ?? ""]
            }
        ).render()
    }

    /// `admin audit --json`: an array of events, each the object of one line of `DATA_DIR/audit.log`.
    public static func json(_ events: [AuditEvent]) -> String { JSONOutput.line(events) }

    private struct TokenJSON: Encodable {
        var id: String
        var role: String
        var label: String
        var created: String
        var revoked: String?
        var token: String?

        init(_ info: Flock_V1_AdminTokenInfo, token: String?) {
            id = info.id
            role = AdminClient.roleName(info.role)
            label = info.label
            created = AdminClient.time(unix: info.createdUnix)
            revoked = info.revokedUnix == 0 ? nil : AdminClient.time(unix: info.revokedUnix)
            self.token = token
        }

        enum CodingKeys: String, CodingKey { case id, role, label, created, revoked, token }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(id, forKey: .id)
            try c.encode(role, forKey: .role)
            try c.encode(label, forKey: .label)
            try c.encode(created, forKey: .created)
            try c.encode(revoked, forKey: .revoked)
            try c.encodeIfPresent(token, forKey: .token)
        }
    }
}

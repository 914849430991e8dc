import Foundation

/// One line of the server's audit log: who did what, when, and how it ended.
///
/// Arguments hold only what is not secret (a version, a reason, a label, a token's id, never a token).
/// The JSON form, one object per line of `DATA_DIR/audit.log`, is stable:
///
/// ```json
/// {"action":"promote","arguments":{"force":"true","reason":"better","version":"7"},
///  "detail":"version 7 promoted to production (forced)","outcome":"ok","time":"2026-05-01T12:00:00.123Z",
///  "who":{"id":"k1a2b3c4d5e6","kind":"token","label":"alice"}}
/// ```
public struct AuditEvent: Sendable, Equatable, Codable {
    /// Who acted: an admin token, an enrolled device, or the server itself.
    public struct Actor: Sendable, Equatable, Codable {
        /// What kind of principal acted.
        public enum Kind: String, Sendable, Codable {
            /// An admin token (id and label of the token).
            case token
            /// An enrolled device (its edge id).
            case device
            /// The server on its own account (for example at start).
            case server
        }

        /// What kind of principal acted.
        public var kind: Kind
        /// The token's id, the device's edge id, or "server".
        public var id: String
        /// The token's label, or a device's label; may be empty.
        public var label: String

        /// Creates an actor.
        public init(kind: Kind, id: String, label: String = "") {
            self.kind = kind
            self.id = id
            self.label = label
        }

        /// An enrolled device acting under its own identity.
        public static func device(_ edgeID: String, label: String = "") -> Actor { Actor(kind: .device, id: edgeID, label: label) }

        /// The server itself.
        public static let server = Actor(kind: .server, id: "server")
    }

    /// How the action ended.
    public enum Outcome: String, Sendable, Codable {
        /// It took effect.
        case ok
        /// It was refused before taking effect (not allowed, bad arguments, wrong state).
        case refused
        /// It was tried and failed.
        case failed
    }

    /// When it happened.
    public var time: Date
    /// Who did it.
    public var actor: Actor
    /// What was done: the admin command's name, such as `start`, `promote`, `tokens.create`, `devices.revoke`.
    public var action: String
    /// The action's arguments that are not secrets, as text.
    public var arguments: [String: String]
    /// How it ended.
    public var outcome: Outcome
    /// The server's answer or the reason for a refusal or failure, for the person reading the log.
    public var detail: String?

    /// Creates an event.
    /// - Parameters:
    ///   - time: when it happened (default: now).
    ///   - actor: who did it.
    ///   - action: what was done (`promote`, `tokens.create`, ...).
    ///   - arguments: the arguments that are not secrets.
    ///   - outcome: how it ended.
    ///   - detail: the server's answer or the reason it was refused or failed.
    public init(
        time: Date = Date(), actor: Actor, action: String, arguments: [String: String] = [:], outcome: Outcome, detail: String? = nil
    ) {
        self.time = time
        self.actor = actor
        self.action = action
        self.arguments = arguments
        self.outcome = outcome
        self.detail = detail
    }

    enum CodingKeys: String, CodingKey {
        case time, actor = "who", action, arguments, outcome, detail
    }

    private static let timeStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    /// Decodes an event from its JSON line form.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let text = try c.decode(String.self, forKey: .time)
        guard let time = try? Date(text, strategy: Self.timeStyle) else {
            throw DecodingError.dataCorruptedError(forKey: .time, in: c, debugDescription: "not an ISO 8601 time: \(text)")
        }
        self.time = time
        actor = try c.decode(Actor.self, forKey: .actor)
        action = try c.decode(String.self, forKey: .action)
        arguments = try c.decodeIfPresent([String: String].self, forKey: .arguments) ?? [:]
        outcome = try c.decode(Outcome.self, forKey: .outcome)
        detail = try c.decodeIfPresent(String.self, forKey: .detail)
    }

    /// Encodes the event as its JSON line form (time in ISO 8601 UTC with milliseconds).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(time.formatted(Self.timeStyle), forKey: .time)
        try c.encode(actor, forKey: .actor)
        try c.encode(action, forKey: .action)
        try c.encode(arguments, forKey: .arguments)
        try c.encode(outcome, forKey: .outcome)
        try c.encodeIfPresent(detail, forKey: .detail)
    }
}

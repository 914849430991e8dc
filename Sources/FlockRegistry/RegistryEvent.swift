import GRDB

/// One entry of the audit log: something that happened to a version or an alias, why, on what evidence, and
/// who did it. Events are only ever appended. A row of the `event` table.
public struct RegistryEvent: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    /// What happened.
    public enum Kind: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
        /// A version was registered.
        case created
        /// The acceptance gate passed a version.
        case accepted
        /// The acceptance gate (or a failed shadow analysis) rejected a version.
        case rejected
        /// A version went into shadow beside production.
        case shadowStarted = "shadow-started"
        /// `production` moved forward to a version (by policy on evidence, or by an operator).
        case promoted
        /// `production` moved back to an earlier production.
        case rolledBack = "rolled-back"
        /// An operator pinned `production`: no automatic moves until unpinned.
        case pinned
        /// An operator unpinned `production`.
        case unpinned
        /// An operator retired a version.
        case retired
        /// Another alias moved.
        case aliasMoved = "alias-moved"
        /// An alias was removed (a shadow that ended).
        case aliasRemoved = "alias-removed"
        /// An analysis reached a decision (passed, failed or inconclusive).
        case analysisDecided = "analysis-decided"
        /// A retired version's artifact was garbage collected (its row stays).
        case collected
    }

    public static let databaseTableName = "event"

    /// Position in the log (assigned on insert).
    public var id: Int64?
    /// When (seconds since 1970).
    public var at: Double
    /// What happened.
    public var kind: Kind
    /// The version it concerns.
    public var version: Int64?
    /// The alias that moved, for alias events.
    public var alias: String?
    /// Where the alias pointed before.
    public var previousVersion: Int64?
    /// `policy`, `admin`, `gate`, `server` or an operator's name.
    public var actor: String
    /// Why, in words.
    public var reason: String
    /// The evidence that decided it, as JSON (a ``AnalysisEvidence`` or gate metrics), when there is some.
    public var evidence: String?

    /// Creates an event to append.
    public init(
        at: Double, kind: Kind, version: Int64?, alias: String? = nil, previousVersion: Int64? = nil,
        actor: String, reason: String, evidence: String? = nil
    ) {
        self.at = at
        self.kind = kind
        self.version = version
        self.alias = alias
        self.previousVersion = previousVersion
        self.actor = actor
        self.reason = reason
        self.evidence = evidence
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }

    enum CodingKeys: String, CodingKey {
        case id, at, kind, version, alias
        case previousVersion = "previous_version"
        case actor, reason, evidence
    }
}

/// Where an alias points. A row of the `alias` table: one row per name, so an alias can never point at two
/// versions, and moving it is one `UPDATE` in the same transaction as its event.
public struct Alias: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    /// The alias that edges serve.
    public static let production = "production"
    /// The newest accepted candidate.
    public static let candidate = "candidate"
    /// The version in shadow beside production.
    public static let shadow = "shadow"

    public static let databaseTableName = "alias"

    /// Its name.
    public var name: String
    /// The version it points at.
    public var version: Int64
    /// Whether an operator pinned it (no automatic moves).
    public var pinned: Bool
    /// The event that last moved it.
    public var event: Int64
}

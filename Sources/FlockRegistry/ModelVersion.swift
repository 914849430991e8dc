import GRDB

/// One version in the registry: a model file (by content hash), its signature, where it came from and how
/// it measured. A row of the `version` table.
public struct ModelVersion: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    /// Where a version stands with the acceptance gate.
    public enum Status: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
        /// Registered; the gate has not decided yet.
        case candidate
        /// Passed the acceptance gate: may be shadowed and promoted.
        case accepted
        /// Failed the gate or its shadow analysis; kept, with the reason.
        case rejected
        /// Taken out of use by an operator; its artifact may be garbage collected (the row stays).
        case retired
    }

    public static let databaseTableName = "version"

    /// The version number: 1, 2, … in the order versions were registered.
    public var id: Int64
    /// SHA-256 (hex) of the model file: the hash its trailer holds, over every byte before it.
    public var hash: String
    /// The server's Ed25519 signature of the hash (hex), as ``ModelSignature`` defines it.
    public var signature: String
    /// The version it was trained from, if any.
    public var parent: Int64?
    /// The model architecture (a preset name such as `2nn`).
    public var model: String
    /// Its parameter count.
    public var parameters: Int
    /// The first round whose update went into it.
    public var roundFirst: Int?
    /// The round that produced it.
    public var roundLast: Int?
    /// Edges whose updates the producing rounds aggregated.
    public var participants: Int
    /// The aggregation strategy (`fedavg`, `fedadam`, …).
    public var strategy: String
    /// The update codec of the producing rounds.
    public var codec: String
    /// Accuracy on the server's holdout, when one is configured.
    public var accuracy: Double?
    /// Mean loss on the server's holdout.
    public var loss: Double?
    /// Example-weighted accuracy that edges reported on their held-out data.
    public var federatedAccuracy: Double?
    /// Example-weighted loss that edges reported.
    public var federatedLoss: Double?
    /// Bytes the producing rounds received from edges.
    public var uploadBytes: Int64
    /// Bytes the producing rounds sent to edges.
    public var downloadBytes: Int64
    /// When it was registered (seconds since 1970).
    public var createdAt: Double
    /// Where it stands with the gate.
    public var status: Status
    /// Why the gate (or an operator) set the status.
    public var statusReason: String?

    /// The table's columns.
    public enum Columns {
        static let id = Column(CodingKeys.id)
        static let hash = Column(CodingKeys.hash)
        static let status = Column(CodingKeys.status)
        static let parent = Column(CodingKeys.parent)
    }

    enum CodingKeys: String, CodingKey {
        case id, hash, signature, parent, model, parameters
        case roundFirst = "round_first", roundLast = "round_last"
        case participants, strategy, codec, accuracy, loss
        case federatedAccuracy = "federated_accuracy", federatedLoss = "federated_loss"
        case uploadBytes = "upload_bytes", downloadBytes = "download_bytes"
        case createdAt = "created_at"
        case status
        case statusReason = "status_reason"
    }
}

/// What the server knows of a new global model when it registers it (everything but the version number,
/// signature and status, which the registry assigns).
public struct NewVersion: Sendable {
    /// The model file's bytes.
    public var file: [UInt8]
    /// The version it was trained from.
    public var parent: Int64?
    /// The model architecture.
    public var model: String
    /// The producing rounds (first and last).
    public var rounds: ClosedRange<Int>?
    /// Edges whose updates were aggregated.
    public var participants: Int
    /// The aggregation strategy.
    public var strategy: String
    /// The update codec.
    public var codec: String
    /// Server holdout accuracy and loss.
    public var accuracy: Double?
    /// Server holdout loss.
    public var loss: Double?
    /// Federated accuracy.
    public var federatedAccuracy: Double?
    /// Federated loss.
    public var federatedLoss: Double?
    /// Bytes received from edges.
    public var uploadBytes: Int64
    /// Bytes sent to edges.
    public var downloadBytes: Int64
    /// Free-form tags (key to value).
    public var tags: [String: String]

    /// Describes a new version.
    public init(
        file: [UInt8], parent: Int64?, model: String, rounds: ClosedRange<Int>?, participants: Int, strategy: String,
        codec: String, accuracy: Double? = nil, loss: Double? = nil, federatedAccuracy: Double? = nil,
        federatedLoss: Double? = nil, uploadBytes: Int64 = 0, downloadBytes: Int64 = 0, tags: [String: String] = [:]
    ) {
        self.file = file
        self.parent = parent
        self.model = model
        self.rounds = rounds
        self.participants = participants
        self.strategy = strategy
        self.codec = codec
        self.accuracy = accuracy
        self.loss = loss
        self.federatedAccuracy = federatedAccuracy
        self.federatedLoss = federatedLoss
        self.uploadBytes = uploadBytes
        self.downloadBytes = downloadBytes
        self.tags = tags
    }
}

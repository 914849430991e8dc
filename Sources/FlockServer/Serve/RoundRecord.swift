/// One round as the server records it (checkpointed with every round, listed by `admin rounds`).
public struct RoundRecord: Sendable, Codable, Equatable {
    /// Round id: attempts are numbered 1, 2, 3, … (a failed round's retry gets the next id).
    public var round: Int
    /// `completed`, `failed` or `running`.
    public var state: String
    /// Edges sent the plan.
    public var selected: Int
    /// Updates aggregated.
    public var participants: Int
    /// Selected edges whose update was not aggregated (gone, too late, or cut by over-selection).
    public var dropped: Int
    /// Accuracy of the model this round produced on the server holdout (nil without a holdout).
    public var accuracy: Double?
    /// Its loss on the server holdout.
    public var loss: Double?
    /// Example-weighted accuracy of this round's model on the edges' held-out splits (reported by the
    /// edges of the next round, before they train).
    public var federatedAccuracy: Double?
    /// Example-weighted loss there.
    public var federatedLoss: Double?
    /// Held-out examples behind the federated metrics.
    public var federatedExamples: Int
    /// Wall time from plan to aggregate, in seconds.
    public var seconds: Double
    /// Update bytes received (serialized gRPC messages with their 5-byte frames).
    public var uploadBytes: Int
    /// Model bytes sent to the round's edges (serialized chunks with frames).
    public var downloadBytes: Int
    /// Global model version after the round: completed rounds so far.
    public var modelVersion: Int
    /// Why a round failed.
    public var reason: String?
    /// Under secure aggregation: edges that dropped in each phase (advertise, share keys, masked input,
    /// unmask).
    public var secureDroppedPerPhase: [Int]?
    /// Under secure aggregation: seconds each phase took.
    public var securePhaseSeconds: [Double]?
    /// `statistics` for a round that gathered the feature moments the model's standardization is fitted from
    /// (no update, no new model version); nil for a training round.
    public var kind: String?

    enum CodingKeys: String, CodingKey {
        case round, state, selected, participants, dropped, accuracy, loss
        case federatedAccuracy = "federated_accuracy"
        case federatedLoss = "federated_loss"
        case federatedExamples = "federated_examples"
        case seconds
        case uploadBytes = "upload_bytes"
        case downloadBytes = "download_bytes"
        case modelVersion = "model_version"
        case reason
        case secureDroppedPerPhase = "secure_dropped_per_phase"
        case securePhaseSeconds = "secure_phase_seconds"
        case kind
    }

    /// The record of a round that has just opened: nothing received yet.
    public static func opened(round: Int, selected: Int, modelVersion: Int, kind: String? = nil) -> RoundRecord {
        RoundRecord(
            round: round, state: "running", selected: selected, participants: 0, dropped: 0, accuracy: nil, loss: nil,
            federatedAccuracy: nil, federatedLoss: nil, federatedExamples: 0, seconds: 0, uploadBytes: 0, downloadBytes: 0,
            modelVersion: modelVersion, reason: nil, secureDroppedPerPhase: nil, securePhaseSeconds: nil, kind: kind)
    }

    /// The kind of a statistics round.
    public static let statisticsKind = "statistics"


    /// The accuracy to show: the server holdout's when there is one, else the federated one.
    public var displayAccuracy: Double? { accuracy ?? federatedAccuracy }
}

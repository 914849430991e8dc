import FlockCore
import GRDB

/// A comparison of two versions on paired evidence from edges, with a state. A row of the `analysis` table.
///
/// A `shadow` analysis asks whether a candidate (the treatment) is no worse than production (the control); a
/// `rollback` analysis keeps measuring production (the treatment) against the production it replaced (the
/// control). Either ends `passed`, `failed` or `inconclusive`, once, and stays so.
public struct Analysis: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    /// What the analysis is for.
    public enum Kind: String, Codable, Sendable, DatabaseValueConvertible {
        /// A candidate in shadow against production: passing promotes it.
        case shadow
        /// Production against its predecessor: failing rolls production back.
        case rollback
    }

    /// Where the analysis stands.
    public enum State: String, Codable, Sendable, DatabaseValueConvertible {
        /// Gathering evidence.
        case running
        /// The treatment is no worse than the control by more than the margin.
        case passed
        /// The treatment is worse than the control by more than the margin (or broke a bound).
        case failed
        /// Ended without a decision: the last planned look was not decisive, no more evidence could come, production
        /// moved under it, or (a rollback analysis) a newer one replaced it.
        case inconclusive
    }

    public static let databaseTableName = "analysis"

    /// Its number (assigned on insert).
    public var id: Int64?
    /// Shadow or rollback.
    public var kind: Kind
    /// The version under test.
    public var treatment: Int64
    /// The version it is compared with.
    public var control: Int64
    /// Its state.
    public var state: State
    /// Planned looks already taken.
    public var looks: Int
    /// When it started (seconds since 1970).
    public var startedAt: Double
    /// When it was decided.
    public var decidedAt: Double?
    /// Why it ended as it did.
    public var reason: String?

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }

    enum CodingKeys: String, CodingKey {
        case id, kind, treatment, control, state, looks
        case startedAt = "started_at", decidedAt = "decided_at", reason
    }
}

/// One edge's cumulative paired evidence for an analysis, oriented as control and treatment. A row of the
/// `evidence` table; an edge's newer report replaces its older one, so a report sent twice counts once.
public struct EdgeEvidence: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "evidence"

    /// The analysis.
    public var analysis: Int64
    /// The edge that measured it.
    public var edge: String
    /// Labelled rows both versions got right.
    public var bothRight: Int
    /// Labelled rows only the control got right.
    public var onlyControl: Int
    /// Labelled rows only the treatment got right.
    public var onlyTreatment: Int
    /// Labelled rows both got wrong.
    public var bothWrong: Int
    /// Rows without a label.
    public var unlabelled: Int
    /// Rows where both predicted the same class.
    public var agreements: Int
    /// Sum of (treatment loss - control loss) over labelled rows.
    public var lossDifferenceSum: Double
    /// Sum of squares of those differences.
    public var lossDifferenceSquares: Double
    /// Labelled rows the loss sums cover.
    public var lossPairs: Int
    /// Median control latency per call, ms.
    public var controlP50Ms: Double
    /// 99th percentile control latency, ms.
    public var controlP99Ms: Double
    /// Median treatment latency, ms.
    public var treatmentP50Ms: Double
    /// 99th percentile treatment latency, ms.
    public var treatmentP99Ms: Double
    /// Rows where the treatment's output was not finite.
    public var treatmentErrors: Int
    /// Median over calls of (treatment - control) latency, ms: both models ran on the same call's rows.
    public var latencyDifferenceMs: Double
    /// When it was last reported.
    public var updatedAt: Double

    /// Every row compared.
    public var rows: Int { bothRight + onlyControl + onlyTreatment + bothWrong + unlabelled }

    /// Orients an edge's served-versus-compared counts: when the treatment is the served model (a rollback
    /// analysis: production is served), `servedIsTreatment` is true.
    public init(analysis: Int64, edge: String, comparison c: PairedComparison, servedIsTreatment: Bool, at moment: Double) {
        self.analysis = analysis
        self.edge = edge
        bothRight = c.bothRight
        bothWrong = c.bothWrong
        unlabelled = c.unlabelled
        agreements = c.agreements
        lossPairs = c.labelledPairs
        let servedP50 = PairedComparison.percentile(0.5, of: c.servedLatencyMs)
        let servedP99 = PairedComparison.percentile(0.99, of: c.servedLatencyMs)
        let comparedP50 = PairedComparison.percentile(0.5, of: c.comparedLatencyMs)
        let comparedP99 = PairedComparison.percentile(0.99, of: c.comparedLatencyMs)
        if servedIsTreatment {
            onlyTreatment = c.onlyServedRight
            onlyControl = c.onlyComparedRight
            lossDifferenceSum = -c.lossDifferenceSum
            (treatmentP50Ms, treatmentP99Ms, controlP50Ms, controlP99Ms) = (servedP50, servedP99, comparedP50, comparedP99)
            treatmentErrors = c.servedErrors
        } else {
            onlyTreatment = c.onlyComparedRight
            onlyControl = c.onlyServedRight
            lossDifferenceSum = c.lossDifferenceSum
            (treatmentP50Ms, treatmentP99Ms, controlP50Ms, controlP99Ms) = (comparedP50, comparedP99, servedP50, servedP99)
            treatmentErrors = c.comparedErrors
        }
        lossDifferenceSquares = c.lossDifferenceSquares
        let paired = zip(c.comparedLatencyMs, c.servedLatencyMs).map { $0 - $1 }
        let median = PairedComparison.percentile(0.5, of: paired)
        latencyDifferenceMs = servedIsTreatment ? -median : median
        updatedAt = moment
    }

    /// Whether every count is non-negative, consistent, and every number finite: anything else is refused.
    public var isValid: Bool {
        let counts = [bothRight, onlyControl, onlyTreatment, bothWrong, unlabelled, agreements, lossPairs, treatmentErrors]
        let reals = [lossDifferenceSum, lossDifferenceSquares, controlP50Ms, controlP99Ms, treatmentP50Ms, treatmentP99Ms, latencyDifferenceMs]
        return counts.allSatisfy { $0 >= 0 } && reals.allSatisfy(\.isFinite) && lossDifferenceSquares >= 0
            && agreements <= rows && lossPairs <= rows - unlabelled && treatmentErrors <= rows
            && [controlP50Ms, controlP99Ms, treatmentP50Ms, treatmentP99Ms].allSatisfy { $0 >= 0 }
    }

    enum CodingKeys: String, CodingKey {
        case analysis, edge
        case bothRight = "both_right", onlyControl = "only_control", onlyTreatment = "only_treatment"
        case bothWrong = "both_wrong", unlabelled, agreements
        case lossDifferenceSum = "loss_difference_sum", lossDifferenceSquares = "loss_difference_squares"
        case lossPairs = "loss_pairs"
        case controlP50Ms = "control_p50_ms", controlP99Ms = "control_p99_ms"
        case treatmentP50Ms = "treatment_p50_ms", treatmentP99Ms = "treatment_p99_ms"
        case treatmentErrors = "treatment_errors"
        case latencyDifferenceMs = "latency_difference_ms"
        case updatedAt = "updated_at"
    }
}

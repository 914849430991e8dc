import Foundation

/// How promotion and rollback analyses decide: the margin, the error rate, and the planned looks.
public struct AnalysisSettings: Sendable, Codable, Equatable {
    /// The non-inferiority margin δ on accuracy: the treatment may be at most this much worse.
    public var margin: Double
    /// The total error rate α over all looks of one analysis (both kinds of wrong decision).
    public var alpha: Double
    /// Labelled pairs before the first look.
    public var minimumPairs: Int
    /// Distinct edges before any look.
    public var minimumEdges: Int
    /// Planned looks; look k happens once `minimumPairs · 2^k` pairs are in. Each look spends α / looks.
    public var looks: Int
    /// Largest share of rows where the treatment's output may be non-finite before it fails outright.
    public var maximumErrorRate: Double
    /// Bound on the treatment's p99 latency per call in ms (the median over edges); nil for none.
    public var maximumLatencyP99Ms: Double?

    /// Settings; the defaults suit edges with a few hundred held-out rows.
    public init(
        margin: Double = 0.02, alpha: Double = 0.05, minimumPairs: Int = 200, minimumEdges: Int = 3, looks: Int = 5,
        maximumErrorRate: Double = 0.01, maximumLatencyP99Ms: Double? = nil
    ) {
        self.margin = margin
        self.alpha = alpha
        self.minimumPairs = minimumPairs
        self.minimumEdges = minimumEdges
        self.looks = looks
        self.maximumErrorRate = maximumErrorRate
        self.maximumLatencyP99Ms = maximumLatencyP99Ms
    }

    /// Checks the ranges.
    /// - Throws: ``RegistryError/Code/invalidArgument`` naming the setting.
    public func validate() throws(RegistryError) {
        guard margin >= 0, margin < 1 else { throw RegistryError(.invalidArgument, "margin must lie in [0, 1), got \(margin)") }
        guard alpha > 0, alpha < 0.5 else { throw RegistryError(.invalidArgument, "alpha must lie in (0, 0.5), got \(alpha)") }
        guard minimumPairs >= 1 else { throw RegistryError(.invalidArgument, "minimum_pairs must be at least 1") }
        guard minimumEdges >= 1 else { throw RegistryError(.invalidArgument, "minimum_edges must be at least 1") }
        guard (1...20).contains(looks) else { throw RegistryError(.invalidArgument, "looks must lie in 1...20, got \(looks)") }
        guard maximumErrorRate >= 0, maximumErrorRate <= 1 else { throw RegistryError(.invalidArgument, "max_error_rate must lie in [0, 1]") }
        if let bound = maximumLatencyP99Ms, !(bound > 0) { throw RegistryError(.invalidArgument, "max_latency_p99_ms must be positive") }
    }

    enum CodingKeys: String, CodingKey {
        case margin, alpha, looks
        case minimumPairs = "minimum_pairs", minimumEdges = "minimum_edges"
        case maximumErrorRate = "max_error_rate", maximumLatencyP99Ms = "max_latency_p99_ms"
    }
}

/// The evidence of one analysis at one moment: totals over edges, the interval on the accuracy difference, and
/// what it means against the margin. It goes into the audit log as JSON beside every decision.
public struct AnalysisEvidence: Sendable, Codable, Equatable {
    /// Labelled pairs (the McNemar table's total).
    public var pairs: Int
    /// Both right.
    public var bothRight: Int
    /// Only the control right (b).
    public var onlyControl: Int
    /// Only the treatment right (c).
    public var onlyTreatment: Int
    /// Both wrong.
    public var bothWrong: Int
    /// Every row compared, labelled or not.
    public var rows: Int
    /// Share of rows where both predicted the same class.
    public var agreement: Double
    /// Distinct edges reporting.
    public var edges: Int
    /// Control accuracy on the labelled pairs.
    public var controlAccuracy: Double
    /// Treatment accuracy on the same pairs.
    public var treatmentAccuracy: Double
    /// Treatment minus control accuracy, (c - b) / pairs.
    public var difference: Double
    /// Lower confidence bound on the difference at this look (nil before the first look).
    public var lower: Double?
    /// Upper confidence bound.
    public var upper: Double?
    /// The margin δ.
    public var margin: Double
    /// The planned look this evidence was judged at (1-based; 0 before the first).
    public var look: Int
    /// The error this look spends.
    public var alphaPerLook: Double
    /// McNemar's exact two-sided p-value of b against c.
    public var mcNemarP: Double
    /// Mean of (treatment - control) loss per labelled pair.
    public var lossDifference: Double?
    /// A normal-approximation interval on it at this look's error.
    public var lossLower: Double?
    /// Upper end of that interval.
    public var lossUpper: Double?
    /// Share of rows where the treatment's output was not finite.
    public var treatmentErrorRate: Double
    /// Median over edges of the control's median latency, ms.
    public var controlP50Ms: Double
    /// Median over edges of the treatment's median latency, ms.
    public var treatmentP50Ms: Double
    /// Median over edges of the control's p99 latency, ms.
    public var controlP99Ms: Double
    /// Median over edges of the treatment's p99 latency, ms.
    public var treatmentP99Ms: Double
    /// Median over edges of each edge's median paired latency difference (treatment - control per call), ms.
    public var latencyDifferenceMs: Double

    enum CodingKeys: String, CodingKey {
        case pairs
        case bothRight = "both_right", onlyControl = "only_control", onlyTreatment = "only_treatment", bothWrong = "both_wrong"
        case rows, agreement, edges
        case controlAccuracy = "control_accuracy", treatmentAccuracy = "treatment_accuracy"
        case difference, lower, upper, margin, look
        case alphaPerLook = "alpha_per_look", mcNemarP = "mcnemar_p"
        case lossDifference = "loss_difference", lossLower = "loss_lower", lossUpper = "loss_upper"
        case treatmentErrorRate = "treatment_error_rate"
        case controlP50Ms = "control_p50_ms", treatmentP50Ms = "treatment_p50_ms"
        case controlP99Ms = "control_p99_ms", treatmentP99Ms = "treatment_p99_ms"
        case latencyDifferenceMs = "latency_difference_ms"
    }
}

/// The non-inferiority test on paired accuracy that decides promotions and rollbacks.
///
/// On identical inputs, each labelled row is a pair; only discordant pairs carry information about the
/// difference (McNemar 1947). With q the share of discordant pairs and π the share of those the treatment got
/// right, the accuracy difference is d = q (2π - 1). At a look, exact Clopper–Pearson intervals on q (from all
/// pairs) and on π (from the discordant ones, McNemar's binomial), each at half the look's error, bound d
/// from below and above. The treatment passes when the lower bound is above -δ (non-inferiority) and fails when
/// the upper bound is below -δ.
///
/// Edges report continually, so the test must stay valid under repeated looks: it looks only at planned sample
/// sizes (`minimumPairs · 2^k`, k < `looks`) and spends α / `looks` at each (a Bonferroni split, the simplest
/// group-sequential design), so the chance of any wrong decision over the whole analysis is at most α. A
/// report that crosses several planned sizes at once is judged once, at the largest. After the last look
/// without a decision the analysis is inconclusive. Fewer edges than `minimumEdges`, no pairs, or numbers that
/// are not finite never decide anything.
public enum NonInferiorityTest {
    /// What a look concluded.
    public enum Verdict: Sendable, Equatable {
        /// Not at a planned look yet (or too few edges): no decision.
        case waiting
        /// At a look, but the interval straddles -δ: keep gathering.
        case continuing
        /// Non-inferior: the lower bound is above -δ.
        case passed
        /// Inferior by more than δ, or a bound (error rate, latency) was broken; the reason says which.
        case failed(String)
        /// The last planned look was not decisive.
        case inconclusive
    }

    /// Judges the evidence of `edges` for an analysis that has already taken `looksTaken` looks.
    /// - Returns: the verdict, the evidence as judged, and the looks taken after this call.
    public static func judge(
        _ edges: [EdgeEvidence], settings: AnalysisSettings, looksTaken: Int
    ) -> (verdict: Verdict, evidence: AnalysisEvidence, looksTaken: Int) {
        let b = edges.reduce(0) { $0 + $1.onlyControl }
        let c = edges.reduce(0) { $0 + $1.onlyTreatment }
        let both = edges.reduce(0) { $0 + $1.bothRight }
        let neither = edges.reduce(0) { $0 + $1.bothWrong }
        let rows = edges.reduce(0) { $0 + $1.rows }
        let n = b + c + both + neither
        let lossPairs = edges.reduce(0) { $0 + $1.lossPairs }
        let lossSum = edges.reduce(0.0) { $0 + $1.lossDifferenceSum }
        let lossSquares = edges.reduce(0.0) { $0 + $1.lossDifferenceSquares }
        let errors = edges.reduce(0) { $0 + $1.treatmentErrors }
        let alphaPerLook = settings.alpha / Double(settings.looks)
        var evidence = AnalysisEvidence(
            pairs: n, bothRight: both, onlyControl: b, onlyTreatment: c, bothWrong: neither, rows: rows,
            agreement: rows > 0 ? Double(edges.reduce(0) { $0 + $1.agreements }) / Double(rows) : .nan,
            edges: Set(edges.map(\.edge)).count,
            controlAccuracy: n > 0 ? Double(both + b) / Double(n) : .nan,
            treatmentAccuracy: n > 0 ? Double(both + c) / Double(n) : .nan,
            difference: n > 0 ? Double(c - b) / Double(n) : .nan,
            lower: nil, upper: nil, margin: settings.margin, look: looksTaken, alphaPerLook: alphaPerLook,
            mcNemarP: ExactTests.mcNemarExact(b: b, c: c),
            lossDifference: lossPairs > 0 ? lossSum / Double(lossPairs) : nil, lossLower: nil, lossUpper: nil,
            treatmentErrorRate: rows > 0 ? Double(errors) / Double(rows) : 0,
            controlP50Ms: median(edges.map(\.controlP50Ms)), treatmentP50Ms: median(edges.map(\.treatmentP50Ms)),
            controlP99Ms: median(edges.map(\.controlP99Ms)), treatmentP99Ms: median(edges.map(\.treatmentP99Ms)),
            latencyDifferenceMs: median(edges.map(\.latencyDifferenceMs)))
        guard edges.allSatisfy(\.isValid), evidence.edges >= settings.minimumEdges, n >= settings.minimumPairs else {
            return (.waiting, evidence, looksTaken)
        }
        // Hard bounds first: they need no statistics.
        if evidence.treatmentErrorRate > settings.maximumErrorRate {
            return (.failed("the treatment's outputs were not finite on \(percent(evidence.treatmentErrorRate)) of rows "
                + "(bound \(percent(settings.maximumErrorRate)))"), evidence, looksTaken)
        }
        if let bound = settings.maximumLatencyP99Ms, evidence.treatmentP99Ms > bound {
            return (.failed("the treatment's p99 latency \(String(format: "%.2f", evidence.treatmentP99Ms)) ms is above "
                + "the bound \(String(format: "%.2f", bound)) ms"), evidence, looksTaken)
        }
        // The largest planned look this many pairs reach.
        var reached = -1
        for k in 0..<settings.looks where n >= settings.minimumPairs << k { reached = k }
        guard reached >= looksTaken else { return (.waiting, evidence, looksTaken) }
        let taken = reached + 1
        evidence.look = taken
        let (lower, upper) = differenceBounds(b: b, c: c, pairs: n, alpha: alphaPerLook)
        evidence.lower = lower
        evidence.upper = upper
        if lossPairs > 1 {
            let mean = lossSum / Double(lossPairs)
            let variance = max(0, (lossSquares - lossSum * mean) / Double(lossPairs - 1))
            let half = ExactTests.normalQuantile(1 - alphaPerLook / 2) * (variance / Double(lossPairs)).squareRoot()
            evidence.lossLower = mean - half
            evidence.lossUpper = mean + half
        }
        if lower > -settings.margin { return (.passed, evidence, taken) }
        if upper < -settings.margin {
            return (.failed("accuracy is worse by more than the margin: the difference is at most "
                + "\(String(format: "%+.4f", upper)) < -\(settings.margin) (look \(taken) of \(settings.looks))"), evidence, taken)
        }
        return (taken >= settings.looks ? .inconclusive : .continuing, evidence, taken)
    }

    /// Bounds on d = (c - b) / n that hold together with probability at least 1 - alpha: Clopper–Pearson on
    /// q = (b + c) / n and on π = c / (b + c), each at alpha / 2, combined at the corners of the box.
    public static func differenceBounds(b: Int, c: Int, pairs n: Int, alpha: Double) -> (lower: Double, upper: Double) {
        let q = ExactTests.clopperPearson(successes: b + c, trials: n, alpha: alpha / 2)
        let pi = ExactTests.clopperPearson(successes: c, trials: b + c, alpha: alpha / 2)
        let low = 2 * pi.lower - 1
        let high = 2 * pi.upper - 1
        return (low >= 0 ? q.lower * low : q.upper * low, high >= 0 ? q.upper * high : q.lower * high)
    }

    private static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    private static func percent(_ x: Double) -> String { String(format: "%.2f%%", x * 100) }
}

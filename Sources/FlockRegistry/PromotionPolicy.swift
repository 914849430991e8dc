import FlockCore
import FlockCrypto
import Foundation

/// The acceptance gate's thresholds.
public struct GateSettings: Sendable, Codable, Equatable {
    /// Smallest server-holdout accuracy a candidate may have; nil for none.
    public var minimumAccuracy: Double?
    /// Largest server-holdout loss; nil for none.
    public var maximumLoss: Double?
    /// How much worse than production's holdout accuracy a candidate may be; nil to skip the comparison.
    public var maximumDrop: Double?

    /// Gate settings: by default only "no worse than production by more than 0.02".
    public init(minimumAccuracy: Double? = nil, maximumLoss: Double? = nil, maximumDrop: Double? = 0.02) {
        self.minimumAccuracy = minimumAccuracy
        self.maximumLoss = maximumLoss
        self.maximumDrop = maximumDrop
    }

    enum CodingKeys: String, CodingKey {
        case minimumAccuracy = "min_accuracy", maximumLoss = "max_loss", maximumDrop = "max_drop"
    }
}

/// Everything the promotion policy is configured with.
public struct PromotionSettings: Sendable, Codable, Equatable {
    /// The acceptance gate.
    public var gate: GateSettings
    /// How analyses decide.
    public var analysis: AnalysisSettings
    /// Share of edges (by a stable hash of their id) that run a shadow candidate.
    public var shadowShare: Double

    /// Settings with the defaults.
    public init(gate: GateSettings = .init(), analysis: AnalysisSettings = .init(), shadowShare: Double = 0.5) {
        self.gate = gate
        self.analysis = analysis
        self.shadowShare = shadowShare
    }

    /// Checks the ranges.
    /// - Throws: ``RegistryError/Code/invalidArgument`` naming the setting.
    public func validate() throws(RegistryError) {
        try analysis.validate()
        guard shadowShare > 0, shadowShare <= 1 else { throw RegistryError(.invalidArgument, "shadow_share must lie in (0, 1], got \(shadowShare)") }
        if let drop = gate.maximumDrop, !(drop >= 0) { throw RegistryError(.invalidArgument, "max_drop must be at least 0") }
    }

    enum CodingKeys: String, CodingKey {
        case gate, analysis
        case shadowShare = "shadow_share"
    }
}

/// What an edge runs: production, and the model it compares with production on the same inputs, if any.
public struct Deployment: Sendable, Equatable {
    /// The version the edge serves.
    public var production: ModelVersion?
    /// The version it runs beside production (a shadow candidate, or the production before this one).
    public var compared: ModelVersion?
    /// The analysis the comparison feeds.
    public var analysis: Int64?
    /// Whether the served model is the analysis's treatment (a rollback analysis) rather than its control.
    public var servedIsTreatment: Bool

    /// No deployment yet (no production).
    public static let none = Deployment(production: nil, compared: nil, analysis: nil, servedIsTreatment: false)
}

/// Production and the running analyses, from which every edge's ``Deployment`` follows.
public struct DeploymentPlan: Sendable, Equatable {
    /// A running analysis and the version edges compare with production for it.
    public struct Comparison: Sendable, Equatable {
        /// The analysis.
        public var analysis: Int64
        /// The version compared with production.
        public var version: ModelVersion
    }

    /// The production version (nil: none yet).
    public var production: ModelVersion?
    /// The running shadow analysis and its candidate.
    public var shadow: Comparison?
    /// The running rollback analysis and the production before this one.
    public var rollback: Comparison?
    /// Share of edges in a shadow cohort.
    public var shadowShare: Double

    /// A plan.
    public init(production: ModelVersion? = nil, shadow: Comparison? = nil, rollback: Comparison? = nil, shadowShare: Double) {
        self.production = production
        self.shadow = shadow
        self.rollback = rollback
        self.shadowShare = shadowShare
    }

    /// Whether `edge` belongs to the shadow cohort of `analysis`: a stable hash of both, below `share`. Edges
    /// outside it keep measuring production against its predecessor while a rollback analysis runs.
    public static func inShadowCohort(edge: String, analysis: Int64, share: Double) -> Bool {
        let digest = SHA256.hash(Array("\(analysis)|\(edge)".utf8)).bytes
        let value = digest.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return Double(value) / 18_446_744_073_709_551_616.0 < share
    }

    /// What `edge` runs.
    public func deployment(for edge: String) -> Deployment {
        guard let production else { return .none }
        if let shadow, Self.inShadowCohort(edge: edge, analysis: shadow.analysis, share: shadowShare) {
            return Deployment(production: production, compared: shadow.version, analysis: shadow.analysis, servedIsTreatment: false)
        }
        if let rollback {
            return Deployment(production: production, compared: rollback.version, analysis: rollback.analysis, servedIsTreatment: true)
        }
        return Deployment(production: production, compared: nil, analysis: nil, servedIsTreatment: false)
    }
}

/// The continual loop's decisions: the acceptance gate, shadow analyses that promote, and rollback analyses that
/// move production back. Every decision is a registry transaction with its audit event and evidence, so the
/// same code runs under `serve` (edges report over the network) and `simulate --data-dir` (edges in process).
///
/// One shadow analysis runs at a time and always runs to its end: a version accepted meanwhile queues (it
/// becomes the `candidate` alias). When the analysis ends, the newest queued version is analysed next against
/// production; older queued versions are skipped, never analysed. So under continuous training an analysis
/// is never cut short by the next round's model, and each one is a clean comparison of two fixed models.
///
/// The shape follows Argo Rollouts' analysis runs (an analysis with a state, success and failure conditions,
/// automatic rollback), with the conditions replaced by the paired, sequentially valid
/// ``NonInferiorityTest``.
public struct PromotionPolicy: Sendable {
    /// The registry it decides in.
    public let registry: Registry
    /// Its settings.
    public let settings: PromotionSettings
    private let log: @Sendable (String) -> Void

    /// A policy over `registry`.
    /// - Throws: ``RegistryError/Code/invalidArgument`` for settings out of range.
    public init(registry: Registry, settings: PromotionSettings, log: @escaping @Sendable (String) -> Void = { _ in }) throws(RegistryError) {
        try settings.validate()
        self.registry = registry
        self.settings = settings
        self.log = log
    }

    // MARK: - Gate

    /// The gate's verdict on `candidate` against `production` (pure).
    /// - Returns: whether it passes, the reason, and the metrics it judged as JSON.
    public static func gate(_ candidate: ModelVersion, production: ModelVersion?, settings: GateSettings) -> (accepted: Bool, reason: String, evidence: String) {
        struct Evidence: Encodable {
            var accuracy: Double?
            var loss: Double?
            var productionVersion: Int64?
            var productionAccuracy: Double?
            var gate: GateSettings
            enum CodingKeys: String, CodingKey {
                case accuracy, loss, gate
                case productionVersion = "production_version", productionAccuracy = "production_accuracy"
            }
        }
        let evidence = JSONOutput.line(Evidence(
            accuracy: candidate.accuracy, loss: candidate.loss, productionVersion: production?.id,
            productionAccuracy: production?.accuracy, gate: settings))
        func finite(_ x: Double?) -> Double? { x.flatMap { $0.isFinite ? $0 : nil } }
        if let minimum = settings.minimumAccuracy {
            guard let accuracy = finite(candidate.accuracy) else { return (false, "no holdout accuracy to check min_accuracy \(minimum) against", evidence) }
            guard accuracy >= minimum else { return (false, String(format: "holdout accuracy %.4f is below min_accuracy %.4f", accuracy, minimum), evidence) }
        }
        if let maximum = settings.maximumLoss {
            guard let loss = finite(candidate.loss) else { return (false, "no holdout loss to check max_loss \(maximum) against", evidence) }
            guard loss <= maximum else { return (false, String(format: "holdout loss %.4f is above max_loss %.4f", loss, maximum), evidence) }
        }
        if let drop = settings.maximumDrop, let production, let reference = finite(production.accuracy) {
            guard let accuracy = finite(candidate.accuracy) else { return (false, "no holdout accuracy to compare with production's", evidence) }
            guard accuracy >= reference - drop else {
                return (false, String(format: "holdout accuracy %.4f is more than %.4f below production's %.4f (version %lld)",
                                      accuracy, drop, reference, production.id), evidence)
            }
            return (true, String(format: "holdout accuracy %.4f is within %.4f of production's %.4f", accuracy, drop, reference), evidence)
        }
        if candidate.accuracy.map({ !$0.isFinite }) == true { return (false, "holdout accuracy is not a number", evidence) }
        return (true, candidate.accuracy.map { String(format: "holdout accuracy %.4f passes the gate", $0) } ?? "no holdout: the gate has nothing to check; the shadow analysis decides", evidence)
    }

    /// Registers the model that round `new.rounds` produced and gates it. A round replayed after a crash
    /// produces the same file: it finds its version (registered before the crash) instead of adding another,
    /// and gates it if the crash came before the gate did.
    /// - Returns: the version, and a line saying what the gate did (nil when it had decided before).
    public func registerAndAdmit(_ new: NewVersion) throws(RegistryError) -> (version: ModelVersion, decision: String?) {
        // The file's trailer is its hash (checked when the file is stored).
        let hash = Hex.encode(Array(new.file.suffix(SHA256.byteCount)))
        var version: ModelVersion
        if let existing = try registry.reader.version(hash: hash), existing.roundLast == new.rounds?.upperBound {
            version = existing
        } else {
            version = try registry.register(new)
        }
        guard version.status == .candidate else { return (version, nil) }
        let decision = try admit(version.id)
        version = try registry.reader.version(version.id)
        return (version, decision)
    }

    /// Gates a freshly registered version and acts: rejected, or accepted and then promoted straight away when
    /// there is no production yet, or put into shadow against production.
    /// - Returns: a line saying what happened.
    @discardableResult
    public func admit(_ id: Int64) throws(RegistryError) -> String {
        let candidate = try registry.reader.version(id)
        let production = try registry.reader.alias(Alias.production).map { a throws(RegistryError) in try registry.reader.version(a.version) }
        let verdict = Self.gate(candidate, production: production, settings: settings.gate)
        guard verdict.accepted else {
            try registry.setStatus(of: id, to: .rejected, actor: "gate", reason: verdict.reason, evidence: verdict.evidence)
            return "version \(id) rejected by the gate: \(verdict.reason)"
        }
        try registry.setStatus(of: id, to: .accepted, actor: "gate", reason: verdict.reason, evidence: verdict.evidence)
        try registry.moveAlias(Alias.candidate, to: id, actor: "policy", reason: "newest accepted version")
        guard let production else {
            try registry.promote(id, actor: "policy", reason: "first accepted version: there is no production to compare it with")
            return "version \(id) accepted and promoted to production (the first)"
        }
        if try registry.reader.alias(Alias.production)?.pinned == true {
            return "version \(id) accepted; production is pinned to version \(production.id), so it is not shadowed"
        }
        if let running = try registry.reader.runningAnalysis(.shadow), running.control == production.id {
            return "version \(id) accepted; queued behind shadow analysis \(running.id!) of version \(running.treatment) "
                + "(when it ends, the newest queued version is analysed)"
        }
        let analysis = try registry.startAnalysis(.shadow, treatment: id, control: production.id)
        return "version \(id) accepted; shadow analysis \(analysis.id!) against production version \(production.id)"
    }

    /// Starts the shadow analysis of the newest queued version (the `candidate` alias, when it is accepted, newer
    /// than production and never analysed) once no shadow analysis runs and production is not pinned. Older
    /// queued versions are skipped.
    /// - Returns: a line saying what started, or nil when nothing did.
    @discardableResult
    public func analyseNextQueued() throws(RegistryError) -> String? {
        let reader = registry.reader
        guard try reader.runningAnalysis(.shadow) == nil,
              let production = try reader.alias(Alias.production), !production.pinned,
              let candidate = try reader.alias(Alias.candidate), candidate.version > production.version,
              try reader.version(candidate.version).status == .accepted else { return nil }
        // A version analysed before (in shadow, or watched as production) is not queued again.
        let analysed = Set(try reader.analyses().map(\.treatment))
        guard !analysed.contains(candidate.version) else { return nil }
        let skipped = try reader.versions().filter {
            $0.status == .accepted && $0.id > production.version && $0.id < candidate.version && !analysed.contains($0.id)
        }.count
        let analysis = try registry.startAnalysis(.shadow, treatment: candidate.version, control: production.version)
        return "shadow analysis \(analysis.id!) of version \(candidate.version), the newest queued, against production version "
            + "\(production.version)" + (skipped > 0 ? " (\(skipped) older queued version\(skipped == 1 ? "" : "s") skipped)" : "")
    }

    /// `line`, followed by what ``analyseNextQueued()`` started.
    private func thenNextQueued(_ line: String) throws(RegistryError) -> String {
        guard let next = try analyseNextQueued() else { return line }
        return line + "; " + next
    }

    // MARK: - Deployment

    /// What edges should run now: production and the running analyses (read once; edges are then assigned
    /// without touching the database).
    public func plan() throws(RegistryError) -> DeploymentPlan {
        let reader = registry.reader
        guard let production = try reader.alias(Alias.production) else { return DeploymentPlan(shadowShare: settings.shadowShare) }
        let served = try reader.version(production.version)
        var plan = DeploymentPlan(production: served, shadowShare: settings.shadowShare)
        if let shadow = try reader.runningAnalysis(.shadow), shadow.control == served.id {
            plan.shadow = .init(analysis: shadow.id!, version: try reader.version(shadow.treatment))
        }
        if let watch = try reader.runningAnalysis(.rollback), watch.treatment == served.id {
            plan.rollback = .init(analysis: watch.id!, version: try reader.version(watch.control))
        }
        return plan
    }

    /// What `edge` should serve and compare now.
    public func deployment(for edge: String) throws(RegistryError) -> Deployment {
        try plan().deployment(for: edge)
    }

    // MARK: - Evidence

    /// Records `edge`'s cumulative comparison for `analysis` and acts on the result: promote, reject, roll back.
    /// - Parameters:
    ///   - served: the hash of the model the edge served, and `compared` the one it compared, which must be the
    ///     analysis's pair (a report for an older deployment is refused).
    ///   - cohortEdges: the connected edges the deployment plan assigns to the analysis, when the caller knows:
    ///     the policy then estimates whether the evidence can reach `min_pairs` and `min_edges` (see
    ///     ``evidenceShortfall(_:cohortEdges:looksTaken:settings:)``).
    /// - Returns: a line saying what was decided, or nil when the analysis goes on.
    /// - Throws: ``RegistryError/Code/conflict`` for an analysis that is not running or a pair it is not about;
    ///   ``RegistryError/Code/invalidArgument`` for counts that do not add up.
    @discardableResult
    public func receive(
        edge: String, analysis id: Int64, served: String, compared: String, comparison: PairedComparison, cohortEdges: Int? = nil
    ) throws(RegistryError) -> String? {
        let reader = registry.reader
        guard let analysis = try reader.analyses(state: .running).first(where: { $0.id == id }) else {
            throw RegistryError(.conflict, "analysis \(id) is not running")
        }
        let treatment = try reader.version(analysis.treatment)
        let control = try reader.version(analysis.control)
        let servedIsTreatment = analysis.kind == .rollback
        let expected = servedIsTreatment ? (treatment.hash, control.hash) : (control.hash, treatment.hash)
        guard (served, compared) == expected else {
            throw RegistryError(.conflict, "evidence for analysis \(id) compares other models than it does")
        }
        try registry.record(EdgeEvidence(analysis: id, edge: edge, comparison: comparison, servedIsTreatment: servedIsTreatment, at: Date().timeIntervalSince1970))
        return try judge(analysis, cohortEdges: cohortEdges)
    }

    /// The words that mark a running analysis's reason (and the log line) while its evidence cannot reach its
    /// next look at the size of its cohort.
    public static let shortfallNote = "evidence cannot reach"

    /// Whether the evidence of an analysis that has taken `looksTaken` looks can reach its next look with
    /// `cohortEdges` edges: nil when it can (or nothing can be told yet), else a note for the operator saying
    /// why not and what to change. The estimate takes the labelled pairs each reporting edge has given so far
    /// as what every edge of the cohort gives (held-out rows are compared once; predictions on labelled rows
    /// add more).
    public static func evidenceShortfall(_ evidence: AnalysisEvidence, cohortEdges: Int, looksTaken: Int = 0, settings: AnalysisSettings) -> String? {
        guard looksTaken < settings.looks else { return nil }
        let target = settings.minimumPairs << looksTaken
        guard evidence.pairs < target || evidence.edges < settings.minimumEdges else { return nil }
        if cohortEdges < settings.minimumEdges {
            return "\(shortfallNote) min_edges: the cohort has \(cohortEdges) connected edge\(cohortEdges == 1 ? "" : "s") and min_edges is "
                + "\(settings.minimumEdges); raise shadow_share, lower min_edges, or connect more edges"
        }
        guard evidence.edges > 0 else { return nil }
        let perEdge = Double(evidence.pairs) / Double(evidence.edges)
        let edges = max(cohortEdges, evidence.edges)
        let expected = perEdge * Double(edges)
        guard expected < Double(target) else { return nil }
        let asks = looksTaken == 0 ? "min_pairs asks for" : "look \(looksTaken + 1) of \(settings.looks) needs"
        return "\(shortfallNote) \(looksTaken == 0 ? "min_pairs" : "look \(looksTaken + 1)") at this cohort size: at about "
            + "\(Int(perEdge.rounded())) labelled pairs per edge, its \(edges) edges give about \(Int(expected.rounded())) of the "
            + "\(target) pairs \(asks); lower min_pairs, raise shadow_share, or give the edges more labelled held-out rows"
    }

    /// Judges a running analysis on all its evidence and acts on the verdict.
    /// - Parameter cohortEdges: the connected edges assigned to it, when known: an analysis whose evidence cannot
    ///   reach its first look then says so, in its reason (`registry analyses`) and once in the log.
    /// - Returns: a line saying what was decided, or nil when it goes on.
    @discardableResult
    public func judge(_ analysis: Analysis, cohortEdges: Int? = nil) throws(RegistryError) -> String? {
        let id = analysis.id!
        let (verdict, evidence, looks) = NonInferiorityTest.judge(
            try registry.reader.evidence(analysis: id), settings: settings.analysis, looksTaken: analysis.looks)
        let json = JSONOutput.line(evidence)
        switch verdict {
        case .waiting, .continuing:
            // While it runs, its reason says where it stands, and whether the evidence can reach the next look.
            let note = cohortEdges.flatMap { Self.evidenceShortfall(evidence, cohortEdges: $0, looksTaken: looks, settings: settings.analysis) }
            let standing: String? = looks == 0 ? (note ?? (analysis.reason?.contains(Self.shortfallNote) == true ? "gathering evidence" : analysis.reason))
                : "look \(looks) of \(settings.analysis.looks) not decisive" + (note.map { "; " + $0 } ?? "")
            let wasNoted = analysis.reason?.contains(Self.shortfallNote) == true
            if verdict == .continuing || standing != analysis.reason {
                try registry.decide(id, state: .running, looks: looks, reason: standing ?? "gathering evidence", evidence: verdict == .continuing ? json : nil)
            }
            if let note, !wasNoted || verdict == .continuing {
                log("registry: analysis \(id) (\(analysis.kind.rawValue) of version \(analysis.treatment)): " + note)
            } else if note == nil, wasNoted {
                log("registry: analysis \(id): the evidence can now reach its next look")
            }
            return nil
        case .passed:
            let reason = String(format: "non-inferior: accuracy difference ≥ %+.4f > -%.4f at look %d (%d pairs, %d edges)",
                                evidence.lower ?? .nan, settings.analysis.margin, looks, evidence.pairs, evidence.edges)
            try registry.decide(id, state: .passed, looks: looks, reason: reason, evidence: json)
            return try analysis.kind == .shadow
                ? thenNextQueued(try promoteAfterShadow(analysis, reason: reason, evidence: json))
                : "production version \(analysis.treatment) confirmed against version \(analysis.control): \(reason)"
        case .failed(let why):
            try registry.decide(id, state: .failed, looks: looks, reason: why, evidence: json)
            if analysis.kind == .shadow {
                try registry.setStatus(of: analysis.treatment, to: .rejected, actor: "policy", reason: "shadow analysis \(id) failed: \(why)", evidence: json)
                try registry.removeAlias(Alias.shadow, actor: "policy", reason: "shadow analysis \(id) failed")
                return try thenNextQueued("version \(analysis.treatment) rejected in shadow: \(why)")
            }
            return try thenNextQueued(try rollBackAfterWatch(analysis, reason: why, evidence: json))
        case .inconclusive:
            try registry.decide(id, state: .inconclusive, looks: looks, reason: "the last planned look was not decisive", evidence: json)
            if analysis.kind == .shadow { try registry.removeAlias(Alias.shadow, actor: "policy", reason: "shadow analysis \(id) inconclusive") }
            return try thenNextQueued("analysis \(id) inconclusive after \(looks) looks")
        }
    }

    /// Ends running analysis `id` inconclusive because no more evidence will come (every edge of its cohort has
    /// compared all it will), and starts the newest queued version's shadow analysis.
    /// - Returns: a line saying what was decided.
    @discardableResult
    public func endWithoutMoreEvidence(_ id: Int64, reason: String) throws(RegistryError) -> String {
        guard let analysis = try registry.reader.analyses(state: .running).first(where: { $0.id == id }) else {
            throw RegistryError(.conflict, "analysis \(id) is not running")
        }
        let json = JSONOutput.line(NonInferiorityTest.judge(
            try registry.reader.evidence(analysis: id), settings: settings.analysis, looksTaken: analysis.looks).evidence)
        try registry.decide(id, state: .inconclusive, looks: analysis.looks, reason: reason, evidence: json)
        if analysis.kind == .shadow { try registry.removeAlias(Alias.shadow, actor: "policy", reason: "shadow analysis \(id) inconclusive") }
        return try thenNextQueued("analysis \(id) inconclusive: \(reason)")
    }

    private func promoteAfterShadow(_ analysis: Analysis, reason: String, evidence: String) throws(RegistryError) -> String {
        try registry.removeAlias(Alias.shadow, actor: "policy", reason: "shadow analysis \(analysis.id!) passed")
        guard let production = try registry.reader.alias(Alias.production), production.version == analysis.control else {
            return "shadow analysis \(analysis.id!) passed, but production moved meanwhile: version \(analysis.treatment) is not promoted"
        }
        guard !production.pinned else {
            return "shadow analysis \(analysis.id!) passed, but production is pinned: version \(analysis.treatment) is not promoted"
        }
        try registry.promote(analysis.treatment, actor: "policy", reason: "shadow analysis \(analysis.id!) passed: \(reason)", evidence: evidence)
        try registry.startAnalysis(.rollback, treatment: analysis.treatment, control: analysis.control)
        return "version \(analysis.treatment) promoted to production (\(reason))"
    }

    private func rollBackAfterWatch(_ analysis: Analysis, reason: String, evidence: String) throws(RegistryError) -> String {
        guard let production = try registry.reader.alias(Alias.production), production.version == analysis.treatment else {
            return "rollback analysis \(analysis.id!) failed, but production already moved"
        }
        guard !production.pinned else {
            return "rollback analysis \(analysis.id!) failed, but production is pinned to version \(production.version): not rolled back"
        }
        let event = try registry.rollback(actor: "policy", reason: "rollback analysis \(analysis.id!) failed: \(reason)", evidence: evidence)
        // A shadow compared against the production that just left compares against nothing that serves.
        if let shadow = try registry.reader.runningAnalysis(.shadow), shadow.control == analysis.treatment {
            try registry.decide(shadow.id!, state: .inconclusive, looks: shadow.looks, reason: "production it was compared with was rolled back", evidence: nil)
            try registry.removeAlias(Alias.shadow, actor: "policy", reason: "production rolled back")
        }
        return "production rolled back from version \(analysis.treatment) to version \(event.version!): \(reason)"
    }

    // MARK: - Operators

    /// An operator's promotion: moves production, ends the analyses about the old production, and starts a
    /// rollback analysis of the new one against the old.
    @discardableResult
    public func promote(_ id: Int64, actor: String, reason: String, force: Bool) throws(RegistryError) -> RegistryEvent {
        let event = try registry.promote(id, actor: actor, reason: reason, force: force)
        try endAnalyses(reason: "production moved by \(actor)")
        if let previous = event.previousVersion { try registry.startAnalysis(.rollback, treatment: id, control: previous, actor: actor) }
        if let next = try analyseNextQueued() { log("registry: " + next) }
        return event
    }

    /// An operator's rollback (to `target`, or to the previous production). A pinned production is rolled back
    /// too, and the pin cleared: the event's reason says so.
    /// - Returns: the `rolled-back` event, and the version whose pin it cleared (nil when production was not pinned).
    @discardableResult
    public func rollback(to target: Int64?, actor: String, reason: String) throws(RegistryError) -> (event: RegistryEvent, clearedPin: Int64?) {
        let before = try registry.reader.alias(Alias.production)
        let event = try registry.rollback(to: target, actor: actor, reason: reason, force: true)
        try endAnalyses(reason: "production rolled back by \(actor)")
        if let next = try analyseNextQueued() { log("registry: " + next) }
        return (event, before?.pinned == true ? before?.version : nil)
    }

    /// An operator's unpin: the policy moves production again, starting with the newest queued version.
    public func unpin(actor: String, reason: String) throws(RegistryError) {
        try registry.unpin(actor: actor, reason: reason)
        if let next = try analyseNextQueued() { log("registry: " + next) }
    }

    /// An operator's pin: production moves to `id` (an accepted version, or any but a retired one with `force`)
    /// and stays there until unpinned. When production moves, the analyses about the old production end.
    @discardableResult
    public func pin(_ id: Int64, actor: String, reason: String, force: Bool) throws(RegistryError) -> RegistryEvent {
        let event = try registry.pin(id, actor: actor, reason: reason, force: force)
        if event.previousVersion != id { try endAnalyses(reason: "production pinned to version \(id) by \(actor)") }
        return event
    }

    private func endAnalyses(reason: String) throws(RegistryError) {
        for running in try registry.reader.analyses(state: .running) {
            try registry.decide(running.id!, state: .inconclusive, looks: running.looks, reason: reason, evidence: nil, actor: "policy")
            if running.kind == .shadow { try registry.removeAlias(Alias.shadow, actor: "policy", reason: reason) }
        }
    }
}

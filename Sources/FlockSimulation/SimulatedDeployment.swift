import FlockCore
import FlockRegistry
import Foundation

/// The continual loop inside `flock-server simulate --data-dir`: after every round the new global model goes
/// into the registry in that folder, through the same gate, shadow analyses, promotions and rollbacks as
/// `serve` (``PromotionPolicy``), with every simulated edge that the deployment plan assigns a comparison
/// running production and the compared version on its held-out rows and reporting the paired counts.
///
/// An edge compares each analysis's pair once on its held-out rows (the same rows again are not new evidence).
struct SimulatedDeployment {
    let registry: Registry
    let policy: PromotionPolicy
    let spec: ModelSpec
    let scaling: FeatureScaling
    /// Each edge's held-out rows, already scaled.
    let heldOut: [Dataset]
    /// The registry version of the current global model.
    var globalVersion: Int64?
    /// Models of versions compared so far, by version.
    private var models: [Int64: Model] = [:]

    /// Opens (or creates) the registry of `dataDirectory`; `lastCompletedRound` is the id of the round that made
    /// the current global model (nil before the first).
    init(
        dataDirectory: String, settings: PromotionSettings, spec: ModelSpec, scaling: FeatureScaling, heldOut: [Dataset], lastCompletedRound: Int?
    ) throws(CoreError) {
        do {
            registry = try Registry(dataDirectory: dataDirectory)
            policy = try PromotionPolicy(registry: registry, settings: settings)
            let reader = registry.reader
            globalVersion = try lastCompletedRound.flatMap { round throws(RegistryError) in try reader.version(round: round)?.id }
        } catch {
            throw CoreError(.io, "\(dataDirectory): \(error.message)")
        }
        self.spec = spec
        self.scaling = scaling
        self.heldOut = heldOut
    }

    /// Registers the model of round `round` (its id: an aborted round's retry has the next), the
    /// `modelVersion`-th completed, gates it, and lets every edge report evidence on the running analyses.
    /// - Returns: what the registry decided, one line per decision.
    mutating func afterRound(
        weights: [Float], round: Int, modelVersion: Int, participants: Int, strategy: String, codec: String, accuracy: Double, loss: Double,
        uploadBytes: Int, downloadBytes: Int
    ) throws(CoreError) -> [String] {
        var lines: [String] = []
        do {
            let file = ModelFile(spec: spec, scaling: scaling, metadata: ["model_version": String(modelVersion)], parameters: weights).encoded()
            let (version, decision) = try policy.registerAndAdmit(NewVersion(
                file: file.bytes, parent: globalVersion, model: spec.name, rounds: round...round, participants: participants,
                strategy: strategy, codec: codec, accuracy: accuracy, loss: loss, uploadBytes: Int64(uploadBytes),
                downloadBytes: Int64(downloadBytes), tags: ["simulated": "true"]))
            globalVersion = version.id
            if let decision { lines.append(decision) }
            lines += try reportEvidence()
        } catch {
            throw CoreError(.io, "registry: \(error.message)")
        }
        return lines
    }

    /// Every edge that the deployment plan gives a comparison, and that has not compared that analysis's pair
    /// yet, compares on its held-out rows and reports. Stops early when a decision changes the plan. A shadow
    /// analysis that every edge of its cohort has reported on gets no more evidence: it ends inconclusive, and
    /// the newest queued version is analysed next.
    private mutating func reportEvidence() throws(RegistryError) -> [String] {
        var lines: [String] = []
        var plan = try policy.plan()
        var reported: [Int64: Set<String>] = [:]
        while true {
            lines += try reportEvidence(plan: &plan, reported: &reported)
            guard let shadow = plan.shadow else { break }
            let cohort = heldOut.indices.filter { heldOut[$0].count > 0 && plan.deployment(for: "edge-\($0)").analysis == shadow.analysis }
            let done = Set(try registry.reader.evidence(analysis: shadow.analysis).map(\.edge))
            guard cohort.allSatisfy({ done.contains("edge-\($0)") }) else { break }
            lines.append(try policy.endWithoutMoreEvidence(
                shadow.analysis, reason: "every edge of its cohort compared its held-out rows, and no look was decisive"))
            plan = try policy.plan()
            guard plan.shadow != nil else { break }
        }
        return lines
    }

    private mutating func reportEvidence(plan: inout DeploymentPlan, reported: inout [Int64: Set<String>]) throws(RegistryError) -> [String] {
        var lines: [String] = []
        var edge = 0
        while edge < heldOut.count {
            let id = "edge-\(edge)"
            let deployment = plan.deployment(for: id)
            defer { edge += 1 }
            guard let production = deployment.production, let compared = deployment.compared, let analysis = deployment.analysis,
                  heldOut[edge].count > 0 else { continue }
            if reported[analysis] == nil { reported[analysis] = Set(try registry.reader.evidence(analysis: analysis).map(\.edge)) }
            guard reported[analysis]?.contains(id) == false else { continue }
            var comparison = PairedComparison()
            comparison.add(served: try model(production), compared: try model(compared), data: heldOut[edge])
            reported[analysis]?.insert(id)
            if let decision = try policy.receive(edge: id, analysis: analysis, served: production.hash, compared: compared.hash, comparison: comparison) {
                lines.append(decision)
                plan = try policy.plan()
                // A new analysis may now run (a rollback watch after a promotion): every edge gets its chance.
                edge = -1
            }
        }
        return lines
    }

    private mutating func model(_ version: ModelVersion) throws(RegistryError) -> Model {
        if let cached = models[version.id] { return cached }
        do {
            let file = try ModelFile.decode(bytes: try registry.reader.modelFile(of: version.id), source: "version \(version.id)").file
            let model = try file.makeModel()
            models[version.id] = model
            return model
        } catch let error as RegistryError {
            throw error
        } catch {
            throw RegistryError(.integrity, "version \(version.id): \(error)")
        }
    }
}

import FlockCore
import FlockCrypto
import FlockRegistry
import FlockWire
import Foundation
import Logging

/// The coordinator's side of the model registry: every completed round's model becomes a version and goes
/// through the gate; edges learn what to serve and compare from their heartbeats, report paired evidence, and
/// the policy promotes or rolls back on it; the admin moves production by hand.
extension Coordinator {
    /// The server's signature of the model whose file hashes to `hash` (empty for a malformed hash).
    static func signature(of hash: String, registry: Registry) -> [UInt8] {
        guard let digest = SHA256.Digest(hex: hash) else { return [] }
        return Hex.decode(registry.sign(digest)) ?? []
    }

    /// The server's model-signing key, hex, for edges to pin.
    public var serverPublicKey: String { Hex.encode(registry.publicKey.bytes) }

    /// Registers the new global model (once: a round replayed after a crash finds its version) and gates it.
    /// The version's round is the round id (`admin rounds`, `tag.round`), not the count of completed rounds:
    /// the two part after a failed round.
    func registerGlobalModel(record: RoundRecord) {
        let round = record.round
        do {
            let (version, decision) = try policy.registerAndAdmit(NewVersion(
                file: modelFileBytes, parent: globalVersion, model: configuration.model, rounds: round...round,
                participants: record.participants, strategy: configuration.strategy.description,
                codec: configuration.roundCodec.identifier, accuracy: record.accuracy, loss: record.loss,
                uploadBytes: Int64(record.uploadBytes), downloadBytes: Int64(record.downloadBytes),
                tags: ["secure_aggregation": configuration.secureAggregation ? "on" : "off", "round": String(record.round)]))
            globalVersion = version.id
            if let decision { logger.notice("registry: \(decision)", metadata: Self.about(round: round)) }
            refreshDeploymentPlan()
        } catch {
            logger.error("registry: \(error.message); the model of round \(round) is not in the registry", metadata: Self.about(round: round))
        }
    }

    /// The registry version of the global model after `modelVersion` completed rounds: the version of the round
    /// (by id) that completed as the `modelVersion`-th, found through the round history.
    static func registryVersion(modelVersion: Int, history: [RoundRecord], registry: Registry) -> Int64? {
        guard modelVersion > 0,
              let record = history.last(where: { $0.state == "completed" && $0.modelVersion == modelVersion }) else { return nil }
        return (try? registry.reader.version(round: record.round))?.id
    }

    /// Attaches the edges' evaluation of the model that `modelRound` completed rounds made to its version.
    func recordFederatedMetrics(modelRound: Int, accuracy: Double, loss: Double) {
        guard let version = Self.registryVersion(modelVersion: modelRound, history: rounds(), registry: registry) else { return }
        do { try registry.setFederatedMetrics(of: version, accuracy: accuracy, loss: loss) } catch {
            logger.error("registry: \(error.message)")
        }
    }

    /// Reads production and the running analyses again.
    func refreshDeploymentPlan() {
        do { deploymentPlan = try policy.plan() } catch { logger.error("registry: \(error.message); edges keep their deployment") }
        let planned = Set([deploymentPlan.production, deploymentPlan.shadow?.version, deploymentPlan.rollback?.version].compactMap { $0?.hash })
        deployedFiles = deployedFiles.filter { planned.contains($0.key) }
    }

    /// What edge `id` serves and compares, for its heartbeat (nil before there is a production).
    public func deployment(for id: String) -> Flock_V1_Deployment? {
        let deployment = deploymentPlan.deployment(for: id)
        guard let production = deployment.production else { return nil }
        var message = Flock_V1_Deployment()
        message.productionHash = production.hash
        message.productionVersion = UInt64(production.id)
        if let compared = deployment.compared, let analysis = deployment.analysis {
            message.comparedHash = compared.hash
            message.comparedVersion = UInt64(compared.id)
            message.analysis = UInt64(analysis)
        }
        return message
    }

    /// Records an edge's paired evidence and acts on what the policy decides.
    /// - Returns: the decision, if one was made.
    /// - Throws: ``ServeRefusal`` for a bad session, an analysis that is not running or is about other models, or
    ///   counts that do not add up.
    public func reportEvidence(id: String, session: String, analysis: Int64, served: String, compared: String, comparison: PairedComparison) throws(ServeRefusal) -> String? {
        try checkSession(id: id, session: session)
        // Only the edges the plan assigned to the analysis count: a report from outside its cohort is refused.
        guard deploymentPlan.deployment(for: id).analysis == analysis else {
            throw ServeRefusal(.failedPrecondition, "edge \(id) is not comparing for analysis \(analysis) now; its next heartbeat says what it runs")
        }
        do {
            // The analysis's cohort: the connected edges the plan assigns to it.
            let cohort = clients().filter { $0.state != "gone" && deploymentPlan.deployment(for: $0.edgeID).analysis == analysis }.count
            let decision = try policy.receive(
                edge: id, analysis: analysis, served: served, compared: compared, comparison: comparison, cohortEdges: cohort)
            if let decision {
                logger.notice("registry: \(decision)")
                refreshDeploymentPlan()
            }
            return decision
        } catch {
            throw Self.refusal(error)
        }
    }

    /// An operator's move of production: promote (optionally forced), roll back, pin or unpin.
    /// - Returns: what happened, and the production version after it.
    public func changeProduction(_ change: Flock_V1_ProductionChange) throws(ServeRefusal) -> (message: String, production: Int64?) {
        let reason = change.reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !reason.isEmpty, reason.utf8.count <= 1_000 else {
            throw ServeRefusal(.invalidArgument, "--reason is required (at most 1,000 bytes): the audit log records why production moved")
        }
        let version: Int64
        if change.reference.isEmpty {
            version = Int64(clamping: change.version)
        } else {
            guard change.reference.utf8.count <= 128 else { throw ServeRefusal(.invalidArgument, "a version reference is at most 128 bytes") }
            do { version = try registry.reader.resolve(change.reference).id } catch {
                throw ServeRefusal(error.code == .notFound ? .notFound : .invalidArgument, error.message)
            }
        }
        let message: String
        do {
            switch change.action {
            case .promote:
                try policy.promote(version, actor: "admin", reason: reason, force: change.force)
                message = "version \(version) promoted to production" + (change.force ? " (forced)" : "")
            case .rollback:
                let (event, clearedPin) = try policy.rollback(to: version == 0 ? nil : version, actor: "admin", reason: reason)
                message = "production rolled back to version \(event.version ?? 0)"
                    + (clearedPin.map { "; it was pinned to version \($0): the pin is cleared (admin pin pins it again)" } ?? "")
            case .pin:
                try policy.pin(version, actor: "admin", reason: reason, force: change.force)
                message = "production pinned to version \(version)" + (change.force ? " (forced)" : "")
            case .unpin:
                try policy.unpin(actor: "admin", reason: reason)
                message = "production unpinned"
            case .unspecified, .UNRECOGNIZED:
                throw ServeRefusal(.invalidArgument, "unknown production action; use promote, rollback, pin or unpin")
            }
        } catch let error as ServeRefusal {
            throw error
        } catch let error as RegistryError {
            throw Self.refusal(error)
        } catch {
            throw ServeRefusal(.unavailable, "\(error)")
        }
        logger.notice("registry: admin: \(message): \(reason)")
        refreshDeploymentPlan()
        return (message, (try? registry.reader.alias(Alias.production))?.version)
    }

    private static func refusal(_ error: RegistryError) -> ServeRefusal {
        switch error.code {
        case .notFound: return ServeRefusal(.notFound, error.message)
        case .conflict: return ServeRefusal(.failedPrecondition, error.message)
        case .invalidArgument, .query: return ServeRefusal(.invalidArgument, error.message)
        default: return ServeRefusal(.unavailable, "registry: \(error.message)")
        }
    }
}

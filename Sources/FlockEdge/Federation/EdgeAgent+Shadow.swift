import FlockCore
import FlockCrypto
import FlockWire
import Foundation
import GRPCCore
import Logging

/// Shadow deployment on the edge: follow the server's deployment (production, and the model to compare with
/// it), verify and keep both models, compare them on the held-out split and on every `flock-edge predict`,
/// and report the paired evidence.
extension EdgeAgent {
    /// The largest deployed model accepted, in bytes.
    static let maximumDeployedBytes = 256 << 20

    /// Brings the local deployment in line with the server's, then gathers and reports evidence. Failures are
    /// logged and retried at the next heartbeat; they never stop training.
    func follow(_ wanted: Flock_V1_Deployment, session: Session) async {
        let folder = options.stateDirectory
        do {
            let current = try? ShadowDeployment.load(stateDirectory: folder, id: options.id)?.deployment
            var deployment: ShadowDeployment
            if let current, current.production.hash == wanted.productionHash, current.compared?.hash ?? "" == wanted.comparedHash,
               current.analysis == (wanted.comparedHash.isEmpty ? 0 : wanted.analysis) {
                deployment = current
            } else {
                let known = [current?.production, current?.compared].compactMap { $0 }
                let production = try await deploy(hash: wanted.productionHash, version: wanted.productionVersion, known: known, session: session)
                let compared = wanted.comparedHash.isEmpty ? nil
                    : try await deploy(hash: wanted.comparedHash, version: wanted.comparedVersion, known: known, session: session)
                deployment = ShadowDeployment(production: production, compared: compared, analysis: compared == nil ? 0 : wanted.analysis)
                try deployment.save(stateDirectory: folder, id: options.id)
                prune(keeping: [production.hash] + (compared.map { [$0.hash] } ?? []))
                let beside = compared.map { ", comparing version \($0.version) beside it (analysis \(wanted.analysis))" } ?? ""
                logger.info("serving version \(production.version)\(beside)", metadata: ["version": .stringConvertible(production.version)])
            }
            if deployment.compared != nil, deployment.analysis > 0 { try await gatherEvidence(deployment, session: session) }
        } catch is CancellationError {
            return
        } catch {
            logger.warning("deployment: \(Self.text(error)); retrying at the next contact")
        }
    }

    private static func text(_ error: any Error) -> String {
        if let rpc = error as? RPCError { return "\(rpc.code): \(rpc.message)" }
        if let core = error as? CoreError { return core.message }
        return "\(error)"
    }

    /// A model of the deployment, verified and stored: reused when already on disk with a known signature,
    /// otherwise fetched, hash- and signature-checked, and written atomically.
    private func deploy(hash: String, version: UInt64, known: [DeployedModel], session: Session) async throws -> DeployedModel {
        guard SHA256.Digest(hex: hash) != nil else { throw RPCError(code: .dataLoss, message: "the deployment names a malformed hash") }
        let folder = options.stateDirectory
        if let have = known.first(where: { $0.hash == hash }),
           (try? ShadowDeployment.loadModel(have, stateDirectory: folder)) != nil {
            return DeployedModel(hash: hash, version: version, signature: have.signature)
        }
        var request = Flock_V1_FetchModelRequest()
        request.edgeID = options.id
        request.session = session.token
        request.modelHash = hash
        request.deployment = true
        let (bytes, signature) = try await streamModel(request, limit: Self.maximumDeployedBytes)
        let (_, actual) = try ModelFile.decode(bytes: bytes, source: "version \(version)")
        guard actual.hex == hash else { throw RPCError(code: .dataLoss, message: "version \(version) does not match its hash; refused") }
        try await trust.verify(signature: signature, hash: hash)
        let path = ShadowDeployment.modelPath(stateDirectory: folder, hash: hash)
        try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try FileIO.writeAtomically(bytes, to: path)
        return DeployedModel(hash: hash, version: version, signature: Hex.encode(signature))
    }

    /// Removes deployed models no longer in use.
    private func prune(keeping hashes: [String]) {
        let folder = options.stateDirectory + "/deployed"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return }
        // Other edges of this process (--simulate-clients) share the folder: keep what any deployment names.
        var used = Set(hashes)
        for name in (try? FileManager.default.contentsOfDirectory(atPath: options.stateDirectory)) ?? [] where name.hasPrefix("deployment-") {
            let id = String(name.dropFirst(11).dropLast(5))
            if let d = try? ShadowDeployment.load(stateDirectory: options.stateDirectory, id: id)?.deployment {
                used.insert(d.production.hash)
                if let c = d.compared { used.insert(c.hash) }
            }
        }
        for name in names where name.hasSuffix(".flockmdl") && !used.contains(String(name.dropLast(9))) {
            try? FileManager.default.removeItem(atPath: folder + "/" + name)
        }
    }

    /// Compares the two models on the held-out split (once per analysis), merges `flock-edge predict`'s records,
    /// and reports the cumulative evidence when it grew.
    private func gatherEvidence(_ deployment: ShadowDeployment, session: Session) async throws {
        guard let comparedModel = deployment.compared else { return }
        let folder = options.stateDirectory
        var ledger = EvidenceLedger.load(
            stateDirectory: folder, id: options.id, analysis: deployment.analysis, served: deployment.production.hash, compared: comparedModel.hash)
        _ = ledger.mergeInbox(stateDirectory: folder, id: options.id)
        if !ledger.heldOutCompared, evaluation.count > 0 {
            let served = try ShadowDeployment.loadModel(deployment.production, stateDirectory: folder)
            let compared = try ShadowDeployment.loadModel(comparedModel, stateDirectory: folder)
            let held = evaluation
            let threads = options.threads
            let comparison = try await slots.run { () throws(CoreError) -> PairedComparison in
                guard served.spec.inputFeatures == compared.spec.inputFeatures, served.spec.classCount == compared.spec.classCount else {
                    throw CoreError(.modelMismatch, "the deployed models take different inputs; nothing to compare")
                }
                var rows = held
                served.scaling.apply(to: &rows)
                try rows.validate(featureCount: served.spec.inputFeatures, classCount: served.spec.classCount)
                let a = try served.makeModel()
                let b = try compared.makeModel()
                a.threads = threads
                b.threads = threads
                var c = PairedComparison()
                c.add(served: a, compared: b, data: rows)
                return c
            }
            ledger.comparison.merge(comparison)
            ledger.heldOutCompared = true
        }
        guard ledger.comparison.rows != ledger.reportedRows else { return }
        try ledger.save(stateDirectory: folder, id: options.id)
        ledger.pruneInbox(stateDirectory: folder, id: options.id)
        let report = Flock_V1_EvidenceReport(
            edge: options.id, session: session.token, analysis: deployment.analysis, served: deployment.production.hash,
            compared: comparedModel.hash, comparison: ledger.comparison)
        do {
            let ack = try await connection.edge.reportEvidence(report, options: EdgeConnection.options(timeout: 30))
            if !ack.decision.isEmpty { logger.notice("the server decided: \(ack.decision)") }
        } catch let error as RPCError where error.code == .failedPrecondition {
            // The analysis ended meanwhile: this evidence is no longer wanted.
            logger.warning("analysis \(deployment.analysis): \(error.message)")
        }
        ledger.reportedRows = ledger.comparison.rows
        try ledger.save(stateDirectory: folder, id: options.id)
    }
}

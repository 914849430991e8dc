import FlockCore
import FlockCrypto
import Foundation

/// One model an edge has deployed: verified and kept under `STATE_DIR/deployed/HASH.flockmdl`.
public struct DeployedModel: Codable, Sendable, Equatable {
    /// The model file's SHA-256 (hex).
    public var hash: String
    /// Its registry version.
    public var version: UInt64
    /// The server's signature of the hash (hex).
    public var signature: String

    /// A deployed model.
    public init(hash: String, version: UInt64, signature: String) {
        self.hash = hash
        self.version = version
        self.signature = signature
    }
}

/// What an edge serves and compares, as the server's heartbeat last said: `STATE_DIR/deployment-ID.json`.
///
/// It is written only after both models are fetched, hash-checked, signature-checked and stored, so
/// `flock-edge predict` always finds whole, verified models; and it is re-verified on every load.
public struct ShadowDeployment: Codable, Sendable, Equatable {
    /// The production model: what the edge answers with.
    public var production: DeployedModel
    /// The model run beside production on the same inputs, if any.
    public var compared: DeployedModel?
    /// The analysis the comparison feeds (0: none).
    public var analysis: UInt64

    /// A deployment.
    public init(production: DeployedModel, compared: DeployedModel?, analysis: UInt64) {
        self.production = production
        self.compared = compared
        self.analysis = analysis
    }

    /// The deployment file of edge `id`.
    public static func path(stateDirectory: String, id: String) -> String { stateDirectory + "/deployment-\(id).json" }
    /// Where a deployed model's file is kept.
    public static func modelPath(stateDirectory: String, hash: String) -> String { stateDirectory + "/deployed/\(hash).flockmdl" }

    /// The deployment of edge `id` (nil: none yet). With `id` nil, the only deployment in the folder.
    /// - Throws: ``CoreError`` for an unreadable file, or several deployments and no id.
    public static func load(stateDirectory: String, id: String?) throws(CoreError) -> (id: String, deployment: ShadowDeployment)? {
        var edge = id
        if edge == nil {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: stateDirectory)) ?? []
            let ids = names.filter { $0.hasPrefix("deployment-") && $0.hasSuffix(".json") }.map { String($0.dropFirst(11).dropLast(5)) }.sorted()
            guard ids.count <= 1 else {
                throw CoreError(.invalidArgument, "\(stateDirectory) holds the deployments of edges \(ids.joined(separator: ", ")); pick one with --id")
            }
            edge = ids.first
        }
        guard let edge else { return nil }
        let file = path(stateDirectory: stateDirectory, id: edge)
        guard FileManager.default.fileExists(atPath: file) else { return nil }
        do { return (edge, try JSONDecoder().decode(ShadowDeployment.self, from: Data(try FileIO.read(file)))) } catch let error as CoreError {
            throw error
        } catch {
            throw CoreError(.corruptFile, "\(file): unreadable deployment (\(error)); flock-edge run writes it again at its next contact")
        }
    }

    /// Writes the deployment of edge `id` atomically.
    public func save(stateDirectory: String, id: String) throws(CoreError) {
        try FileIO.writeAtomically(Array(JSONOutput.data(self)), to: Self.path(stateDirectory: stateDirectory, id: id))
    }

    /// Loads a deployed model, checking its hash and the server's signature against the pinned key.
    /// - Throws: ``CoreError/Code/corruptFile`` when the file, hash or signature does not match: the edge refuses
    ///   to serve it.
    public static func loadModel(_ model: DeployedModel, stateDirectory: String) throws(CoreError) -> ModelFile {
        guard let key = try ServerTrust.pinnedKey(stateDirectory: stateDirectory) else {
            throw CoreError(.corruptFile, "\(stateDirectory) pins no server key: cannot check version \(model.version)")
        }
        let (file, hash) = try ModelFile.read(from: modelPath(stateDirectory: stateDirectory, hash: model.hash))
        guard hash.hex == model.hash else {
            throw CoreError(.corruptFile, "deployed model \(model.hash.prefix(12)) hashes to \(hash.hex.prefix(12)); refusing to serve it")
        }
        try ModelSignature.verify(signature: model.signature, hash: model.hash, publicKey: key)
        return file
    }
}

/// An edge's paired evidence for one analysis: the cumulative comparison it reports (a later report replaces
/// the earlier), whether its held-out split was compared already (once per analysis: the same rows twice
/// are not new evidence), and which `flock-edge predict` records it merged. `STATE_DIR/evidence-ID/ANALYSIS.json`.
public struct EvidenceLedger: Codable, Sendable, Equatable {
    /// The analysis.
    public var analysis: UInt64
    /// The served model's hash.
    public var served: String
    /// The compared model's hash.
    public var compared: String
    /// Everything compared so far.
    public var comparison = PairedComparison()
    /// Whether the held-out split is in it.
    public var heldOutCompared = false
    /// Names of merged predict records.
    public var merged: [String] = []
    /// Rows in the last report the server accepted.
    public var reportedRows = 0

    /// The folder of edge `id`'s ledgers.
    public static func folder(stateDirectory: String, id: String) -> String { stateDirectory + "/evidence-\(id)" }
    /// Where `flock-edge predict` leaves its comparisons for `flock-edge run` to merge.
    public static func inbox(stateDirectory: String, id: String) -> String { folder(stateDirectory: stateDirectory, id: id) + "/inbox" }

    /// The ledger of `analysis`, or a fresh one.
    public static func load(stateDirectory: String, id: String, analysis: UInt64, served: String, compared: String) -> EvidenceLedger {
        let path = folder(stateDirectory: stateDirectory, id: id) + "/\(analysis).json"
        if let bytes = try? FileIO.read(path), let ledger = try? JSONDecoder().decode(EvidenceLedger.self, from: Data(bytes)),
           ledger.analysis == analysis, ledger.served == served, ledger.compared == compared {
            return ledger
        }
        return EvidenceLedger(analysis: analysis, served: served, compared: compared)
    }

    /// Writes the ledger atomically.
    public func save(stateDirectory: String, id: String) throws(CoreError) {
        let directory = Self.folder(stateDirectory: stateDirectory, id: id)
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try FileIO.writeAtomically(Array(JSONOutput.data(self)), to: directory + "/\(analysis).json")
    }

    /// Merges the predict records of this analysis waiting in the inbox (each once, by name).
    /// - Returns: whether anything was merged.
    public mutating func mergeInbox(stateDirectory: String, id: String) -> Bool {
        let inbox = Self.inbox(stateDirectory: stateDirectory, id: id)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: inbox) else { return false }
        var changed = false
        for name in names.sorted() where name.hasPrefix("\(analysis)-") && name.hasSuffix(".json") && !merged.contains(name) {
            guard let bytes = try? FileIO.read(inbox + "/" + name),
                  let record = try? JSONDecoder().decode(PredictRecord.self, from: Data(bytes)),
                  record.served == served, record.compared == compared else { continue }
            comparison.merge(record.comparison)
            merged.append(name)
            changed = true
        }
        return changed
    }

    /// Removes inbox records already merged (after the ledger that counts them is on disk).
    public func pruneInbox(stateDirectory: String, id: String) {
        let inbox = Self.inbox(stateDirectory: stateDirectory, id: id)
        for name in merged { try? FileManager.default.removeItem(atPath: inbox + "/" + name) }
    }
}

/// What one `flock-edge predict` call compared, left in the inbox for `flock-edge run` to report.
public struct PredictRecord: Codable, Sendable, Equatable {
    /// The served model's hash.
    public var served: String
    /// The compared model's hash.
    public var compared: String
    /// The comparison.
    public var comparison: PairedComparison
}

import FlockCore
import FlockCrypto
import FlockEdge
import FlockTestSupport
import Foundation
import Testing

/// The edge's side of shadow deployment on real files and real signatures: a pinned server key, models that
/// are served only when their hash and signature check out, and predict calls that leave paired evidence
/// which is merged once.
@Suite struct ShadowDeploymentTests {
    /// A state folder with two signed, deployed 2nn models on 64 features (production and a compared one).
    struct Deployed {
        let folder = TestData.temporaryFolder()
        let key = Ed25519.KeyPair.generate()
        var deployment: ShadowDeployment

        init(analysis: UInt64 = 4) throws {
            var models: [DeployedModel] = []
            for seed in [UInt64(1), 2] {
                let model = try Model(spec: try ModelSpec.preset("2nn", inputFeatures: 64, classCount: 10), seed: seed)
                let (bytes, hash) = ModelFile(model: model, scaling: .max(16)).encoded()
                let path = ShadowDeployment.modelPath(stateDirectory: folder, hash: hash.hex)
                try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try FileIO.writeAtomically(bytes, to: path)
                models.append(DeployedModel(hash: hash.hex, version: seed, signature: ModelSignature.sign(hash, with: key)))
            }
            _ = try ServerTrust(stateDirectory: folder, configured: key.publicKey)
            deployment = ShadowDeployment(production: models[0], compared: models[1], analysis: analysis)
            try deployment.save(stateDirectory: folder, id: "e1")
        }
    }

    @Test func theServerKeyIsPinnedOnFirstContactAndAnotherIsRefused() async throws {
        let folder = TestData.temporaryFolder()
        let trust = try ServerTrust(stateDirectory: folder, configured: nil)
        let first = Ed25519.KeyPair.generate().publicKey
        try await trust.accept(announced: Hex.encode(first.bytes))
        #expect(try ServerTrust.pinnedKey(stateDirectory: folder) == first)
        await #expect(throws: CoreError.self) { try await trust.accept(announced: Hex.encode(Ed25519.KeyPair.generate().publicKey.bytes)) }
        await #expect(throws: CoreError.self) { try await trust.accept(announced: "not hex") }
        // A restarted edge keeps the pin.
        let restarted = try ServerTrust(stateDirectory: folder, configured: nil)
        try await restarted.accept(announced: Hex.encode(first.bytes))
        await #expect(throws: CoreError.self) { try await restarted.accept(announced: Hex.encode(Ed25519.KeyPair.generate().publicKey.bytes)) }
    }

    /// The two ways out the refusal names: removing the pinned file (the running edge pins the new key at its
    /// next attempt), or the operator's --server-key, which replaces the pin.
    @Test func aChangedServerKeyIsTakenOnceThePinIsRemovedOrReplaced() async throws {
        let folder = TestData.temporaryFolder()
        let old = Ed25519.KeyPair.generate().publicKey, new = Ed25519.KeyPair.generate().publicKey
        let trust = try ServerTrust(stateDirectory: folder, configured: nil)
        #expect(try await trust.accept(announced: Hex.encode(old.bytes)))
        do {
            try await trust.accept(announced: Hex.encode(new.bytes))
            Issue.record("a server with another key was trusted")
        } catch {
            #expect(error.message.contains("this edge refuses the server"), "\(error.message)")
            #expect(error.message.contains("remove \(trust.path)"), "\(error.message)")
            #expect(error.message.contains("--server-key"), "\(error.message)")
        }
        try FileManager.default.removeItem(atPath: trust.path)
        #expect(try await trust.accept(announced: Hex.encode(new.bytes)))
        #expect(try ServerTrust.pinnedKey(stateDirectory: folder) == new)

        let configured = try ServerTrust(stateDirectory: folder, configured: old)
        #expect(try ServerTrust.pinnedKey(stateDirectory: folder) == old)
        #expect(try await configured.accept(announced: Hex.encode(old.bytes)) == false)
        await #expect(throws: CoreError.self) { try await configured.accept(announced: Hex.encode(new.bytes)) }
    }

    @Test func predictAnswersWithProductionAndLeavesEvidenceThatIsMergedOnce() throws {
        let deployed = try Deployed()
        let data = TestData.random(rows: 40, features: 64, classes: 10, seed: 3)
        let outcome = try DeployedPrediction.predict(stateDirectory: deployed.folder, id: nil, data: data)
        #expect(outcome.productionVersion == 1 && outcome.comparedVersion == 2 && outcome.answers.count == 40)
        // The answers are production's own.
        var scaled = data
        FeatureScaling.max(16).apply(to: &scaled)
        let production = try ModelFile.read(from: ShadowDeployment.modelPath(stateDirectory: deployed.folder, hash: deployed.deployment.production.hash)).file
        let logits = try production.makeModel().logits(features: scaled.features, count: 40)
        for (row, answer) in outcome.answers.enumerated() {
            let scores = logits[(row * 10)..<(row * 10 + 10)]
            #expect(answer.label == scores.indices.max { scores[$0] < scores[$1] }! - row * 10)
        }
        let comparison = try #require(outcome.comparison)
        #expect(comparison.labelledPairs == 40 && comparison.servedLatencyMs.count == 1)

        var ledger = EvidenceLedger.load(
            stateDirectory: deployed.folder, id: "e1", analysis: 4, served: deployed.deployment.production.hash,
            compared: deployed.deployment.compared!.hash)
        let merged = ledger.mergeInbox(stateDirectory: deployed.folder, id: "e1")
        let mergedAgain = ledger.mergeInbox(stateDirectory: deployed.folder, id: "e1")
        #expect(merged && !mergedAgain)
        #expect(ledger.comparison.rows == 40)
        _ = try DeployedPrediction.predict(stateDirectory: deployed.folder, id: "e1", data: data)
        let second = ledger.mergeInbox(stateDirectory: deployed.folder, id: "e1")
        #expect(second && ledger.comparison.rows == 80)
    }

    @Test func aModelWhoseHashOrSignatureDoesNotMatchIsNotServed() throws {
        // Signed by another key.
        var forged = try Deployed()
        forged.deployment.production.signature = ModelSignature.sign(
            SHA256.Digest(hex: forged.deployment.production.hash)!, with: Ed25519.KeyPair.generate())
        try forged.deployment.save(stateDirectory: forged.folder, id: "e1")
        let data = TestData.random(rows: 5, features: 64, classes: 10, seed: 3)
        #expect(throws: CoreError.self) { _ = try DeployedPrediction.predict(stateDirectory: forged.folder, id: nil, data: data) }

        // A damaged file.
        let damaged = try Deployed()
        let path = ShadowDeployment.modelPath(stateDirectory: damaged.folder, hash: damaged.deployment.production.hash)
        var bytes = try FileIO.read(path)
        bytes[2_000] ^= 1
        try FileIO.writeAtomically(bytes, to: path)
        #expect(throws: CoreError.self) { _ = try DeployedPrediction.predict(stateDirectory: damaged.folder, id: nil, data: data) }

        // The compared model is checked as strictly: a bad one stops the call rather than skew the evidence.
        var badCompared = try Deployed()
        badCompared.deployment.compared?.signature = badCompared.deployment.production.signature
        try badCompared.deployment.save(stateDirectory: badCompared.folder, id: "e1")
        #expect(throws: CoreError.self) { _ = try DeployedPrediction.predict(stateDirectory: badCompared.folder, id: nil, data: data) }
    }

    @Test func theCommandAnswersFromTheDeploymentAndSaysWhenThereIsNone() throws {
        let deployed = try Deployed(analysis: 0)
        let rows = (0..<3).map { r in (0..<64).map { String(($0 + r) % 17) }.joined(separator: ",") }
        let input = try EdgeCommandTests.file(rows)
        let answer = try EdgeCommandTests.run(["predict", "--input", input, "--unlabelled", "--state-dir", deployed.folder, "--json"])
        #expect(answer.status == 0, "\(answer.error)")
        let object = try JSONSerialization.jsonObject(with: Data(answer.output.utf8)) as? [String: Any]
        #expect(object?["version"] as? Int == 1 && (object?["predictions"] as? [Any])?.count == 3)
        let none = try EdgeCommandTests.run(["predict", "--input", input, "--unlabelled", "--state-dir", TestData.temporaryFolder()])
        #expect(none.status == 1 && none.error.contains("holds no deployment"))
    }
}

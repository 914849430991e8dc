import FlockCore
import FlockTestSupport
import Foundation
import Testing

/// The continual loop through real processes on 127.0.0.1: a real server and four real edges, the registry
/// on a real SQLite file, and `flock-server registry` / `admin` as an operator runs them.
///
/// Good rounds are shadowed on the edges and promoted on their paired evidence; rounds trained on
/// label-shuffled data are rejected (never promoted); a bad version that an operator force-promotes is caught
/// by the rollback analysis on the edges' field evidence, and production moves back by itself. Each decision
/// is in `registry history` with its evidence.
@Suite(.serialized) struct RegistryScenarioTests {
    static let config = """
        [registry]
        min_pairs = 200
        min_edges = 3
        looks = 4
        shadow_share = 1.0
        margin = 0.03
        max_drop = 0.03
        """

    /// `flock-server registry ARGS --data-dir DIR`.
    func registry(_ fleet: Fleet, _ arguments: [String]) throws -> TestData.ProcessResult {
        try TestData.run(TestData.executable("flock-server"), ["registry"] + arguments + ["--data-dir", fleet.dataDirectory])
    }

    /// `registry history --alias production --json`, parsed.
    func productionMoves(_ fleet: Fleet) throws -> [[String: Any]] {
        let result = try registry(fleet, ["history", "--alias", "production", "--json"])
        guard result.status == 0 else { return [] }
        return try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [[String: Any]] ?? []
    }

    /// A copy of `path` with its labels permuted (seeded): the features say nothing about the labels any more.
    func shuffledLabels(_ path: String, to out: String, seed: UInt64) throws {
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        var labels = lines.map { String($0.prefix { $0 != "," }) }
        var rng = SeededGenerator(seed: seed)
        for i in stride(from: labels.count - 1, to: 0, by: -1) { labels.swapAt(i, rng.nextIndex(below: i + 1)) }
        let rows = zip(labels, lines).map { label, line in label + line.drop { $0 != "," } }
        try (rows.joined(separator: "\n") + "\n").write(toFile: out, atomically: true, encoding: .utf8)
    }

    /// The version `flock-edge predict` answers with from edge `name`'s state folder (nil when it cannot answer).
    func servedVersion(_ fleet: Fleet, _ name: String) throws -> Int? {
        let answer = try TestData.run(TestData.executable("flock-edge"), [
            "predict", "--input", TestData.path("mnist5k-test.csv"), "--state-dir", fleet.folder + "/" + name, "--json",
        ])
        guard answer.status == 0 else { return nil }
        return (try JSONSerialization.jsonObject(with: Data(answer.output.utf8)) as? [String: Any])?["version"] as? Int
    }

    func startEdges(_ fleet: Fleet, server: String, parts: [String]) throws {
        for (i, part) in parts.enumerated() {
            try fleet.startEdge("edge-\(i)", server: server, data: part, extra: ["--holdout", "0.3"])
        }
    }

    func stopEdges(_ fleet: Fleet, _ count: Int) {
        for i in 0..<count { fleet.kill9("edge-\(i)") }
    }

    @Test func goodVersionsArePromotedBadOnesRejectedAndAForcedBadPromotionIsRolledBack() throws {
        let fleet = Fleet()
        try FileManager.default.createDirectory(atPath: fleet.dataDirectory, withIntermediateDirectories: true)
        let configPath = fleet.folder + "/server.toml"
        try Self.config.write(toFile: configPath, atomically: true, encoding: .utf8)
        let common = ["--config", configPath, "--min-clients", "4", "--heartbeat", "0.3", "--edge-timeout", "3", "--secure-aggregation", "off"]
            + ServeProcessTests.holdout
        let parts = try fleet.partition(4, scheme: "iid")

        // 1. Three good rounds: the first version becomes production; the next are shadowed and promoted.
        var server = try fleet.startServer(common + ["--rounds", "3"])
        try startEdges(fleet, server: server, parts: parts)
        try fleet.wait("a promotion on shadow evidence") {
            try productionMoves(fleet).contains { ($0["reason"] as? String)?.contains("shadow analysis") == true }
        }
        let promotedByPolicy = try productionMoves(fleet)
        #expect(promotedByPolicy.first?["version"] as? Int == 1 && promotedByPolicy.first?["kind"] as? String == "promoted")
        let shadowPromotion = try #require(promotedByPolicy.first { ($0["reason"] as? String)?.contains("shadow analysis") == true })
        #expect(shadowPromotion["actor"] as? String == "policy")
        let evidence = try JSONSerialization.jsonObject(with: Data((shadowPromotion["evidence"] as? String ?? "").utf8)) as? [String: Any]
        #expect((evidence?["pairs"] as? Int ?? 0) >= 200 && (evidence?["edges"] as? Int ?? 0) >= 3, "\(String(describing: evidence))")
        #expect((evidence?["lower"] as? Double ?? -1) > -0.03)
        try fleet.wait("3 rounds") { try fleet.status()["completed_rounds"] as? Int == 3 }
        // The edges serve production: flock-edge predict answers with the verified production model.
        try fleet.wait("edge-0 serving production") {
            try servedVersion(fleet, "edge-0") == productionMoves(fleet).last?["version"] as? Int
        }
        #expect(try fleet.admin(["stop"]).status == 0)
        fleet.processes["server"]?.waitUntilExit()
        stopEdges(fleet, 4)

        // 2. Two rounds on label-shuffled data: their models fall on the server holdout; the gate rejects them.
        let shuffled = try parts.enumerated().map { i, part throws -> String in
            let out = fleet.folder + "/shuffled-\(i).csv"
            try shuffledLabels(part, to: out, seed: UInt64(100 + i))
            return out
        }
        server = try fleet.startServer(common + ["--rounds", "5"])
        try startEdges(fleet, server: server, parts: shuffled)
        try fleet.wait("rounds 4 and 5") { try fleet.status()["completed_rounds"] as? Int == 5 }
        let versions = try JSONSerialization.jsonObject(with: Data(try registry(fleet, ["list", "--json"]).output.utf8)) as? [[String: Any]] ?? []
        let bad = versions.filter { ($0["round_last"] as? Int ?? 0) > 3 }
        #expect(bad.count == 2)
        for version in bad {
            #expect(version["status"] as? String == "rejected", "\(version)")
            #expect((version["status_reason"] as? String)?.contains("below production") == true, "\(version)")
        }
        // Production may still have moved, on the edges' evidence, to a good version of phase 1 (a shadow that
        // was running when phase 1 ended); never to a version trained on shuffled labels.
        let goodProduction = try #require(try productionMoves(fleet).last?["version"] as? Int)
        #expect(goodProduction <= 3 && !bad.contains { $0["id"] as? Int == goodProduction })
        #expect(try fleet.admin(["stop"]).status == 0)
        fleet.processes["server"]?.waitUntilExit()
        stopEdges(fleet, 4)

        // 3. An operator forces the worst of them into production; the edges (clean data again) measure it
        //    against the production it replaced, and the policy rolls it back.
        server = try fleet.startServer(common + ["--rounds", "5"])
        try startEdges(fleet, server: server, parts: parts)
        let worst = try #require(bad.last?["id"] as? Int)
        let refused = try fleet.admin(["promote", String(worst), "--reason", "trying it"])
        #expect(refused.status == 1 && refused.error.contains("--force"))
        let forced = try fleet.admin(["promote", String(worst), "--force", "--reason", "operator insists"])
        #expect(forced.status == 0, "\(forced.error)")
        try fleet.wait("the automatic rollback") { try productionMoves(fleet).last?["kind"] as? String == "rolled-back" }
        let moves = try productionMoves(fleet)
        let forcedMove = moves[moves.count - 2]
        let rollback = moves[moves.count - 1]
        #expect(forcedMove["actor"] as? String == "admin" && forcedMove["version"] as? Int == worst)
        #expect(forcedMove["reason"] as? String == "operator insists")
        // Back to the production the forced one replaced (a good version, whatever moved meanwhile).
        let restored = try #require(forcedMove["previous_version"] as? Int)
        #expect(restored <= 3 && !bad.contains { $0["id"] as? Int == restored })
        #expect(rollback["actor"] as? String == "policy" && rollback["version"] as? Int == restored)
        #expect(rollback["previous_version"] as? Int == worst)
        let field = try JSONSerialization.jsonObject(with: Data((rollback["evidence"] as? String ?? "").utf8)) as? [String: Any]
        #expect((field?["upper"] as? Double ?? 0) < -0.03, "\(String(describing: field))")
        // Edges switch back at their next contact.
        try fleet.wait("edge-1 serving version \(restored) again") { try servedVersion(fleet, "edge-1") == restored }

        // The whole story, readable; the artifacts and signatures intact.
        let history = try registry(fleet, ["history", "--alias", "production"])
        #expect(history.status == 0 && history.output.contains("rolled-back") && history.output.contains("evidence:"))
        #expect(history.output.contains("McNemar"))
        let verify = try registry(fleet, ["verify"])
        #expect(verify.status == 0 && verify.output.hasPrefix("ok:"), "\(verify.output)\(verify.error)")
    }
}

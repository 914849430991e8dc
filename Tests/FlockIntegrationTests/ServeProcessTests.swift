import FlockCore
import FlockServer
import FlockTestSupport
import Foundation
import Testing

/// A real server and real edges on 127.0.0.1: a full run, an edge killed mid-round, the server killed with
/// SIGKILL and restarted (edges reconnect, nothing completed is lost), and the admin token.
@Suite(.serialized) struct ServeProcessTests {
    static let holdout = ["--holdout", TestData.path("mnist5k-test.csv")]

    @Test func edgesTrainRoundsAndAdminReportsThem() throws {
        let fleet = Fleet()
        let (server, _) = try fleet.startServerWithThreeEdges(["--rounds", "3", "--min-clients", "3", "--heartbeat", "0.5"] + Self.holdout)
        try fleet.wait("3 rounds") { try fleet.status()["completed_rounds"] as? Int == 3 }

        let rounds = try fleet.rounds()
        #expect(rounds.count == 3)
        for (i, round) in rounds.enumerated() {
            #expect(round["round"] as? Int == i + 1 && round["state"] as? String == "completed")
            #expect(round["participants"] as? Int == 3 && round["dropped"] as? Int == 0)
            // Three f32 updates of the 199,210-parameter 2nn, with their framing.
            #expect((round["upload_bytes"] as? Int ?? 0) >= 3 * 199_210 * 4)
            #expect(round["seconds"] is Double && round["model_version"] as? Int == i + 1)
        }
        let accuracies = rounds.compactMap { $0["accuracy"] as? Double }
        #expect(accuracies.count == 3 && accuracies[2] > 0.75, "\(accuracies)")
        // Edges of round 2 and 3 evaluated the models of rounds 1 and 2 on their held-out rows.
        #expect(rounds[0]["federated_accuracy"] is Double && rounds[1]["federated_accuracy"] is Double)
        let status = try fleet.status()
        #expect(status["state"] as? String == "finished" && status["connected_edges"] as? Int == 3)
        let clients = try fleet.adminJSON("clients") as? [[String: Any]] ?? []
        #expect(clients.map { $0["edge_id"] as? String } == ["edge-0", "edge-1", "edge-2"])
        #expect(clients.allSatisfy { $0["rounds"] as? Int == 3 })
        let shown = try fleet.admin(["round", "show", "2", "--json"])
        #expect(shown.status == 0 && shown.output.contains("\"round\":2"))
        #expect(try fleet.admin(["round", "show", "99"]).error.contains("no round 99"))
        let table = try fleet.admin(["rounds"])
        #expect(table.status == 0 && table.output.contains("participants") && table.output.split(separator: "\n").count == 4)

        // The admin token: stored hashed, its copy owner-only; calls without it or with a wrong one are refused.
        let mode = try FileManager.default.attributesOfItem(atPath: fleet.dataDirectory + "/admin.token")[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let wrong = try TestData.run(TestData.executable("flock-server"), ["admin", "pause", "--server", server, "--token", "not-the-token", "--ca", fleet.dataDirectory + "/tls/ca.pem"])
        #expect(wrong.status == 1 && wrong.error.contains("admin token"))
        let none = try TestData.run(TestData.executable("flock-server"), ["admin", "status", "--server", server, "--data-dir", fleet.folder + "/nowhere", "--ca", fleet.dataDirectory + "/tls/ca.pem"])
        #expect(none.status == 1 && none.error.contains("no admin token"))
        #expect(try fleet.status()["state"] as? String == "finished")
        // stop shuts the server down cleanly.
        #expect(try fleet.admin(["stop"]).status == 0)
        fleet.processes["server"]?.waitUntilExit()
        #expect(fleet.processes["server"]?.terminationStatus == 0)

        // Under the test's umask (022), everything in the data directory is the owner's alone: the models, the
        // round history, the registry's database and artifacts, the token, the lock.
        let (files, exposed) = Self.modes(under: fleet.dataDirectory)
        #expect(files.contains("global.flockmdl") && files.contains("rounds.flocksrv") && files.contains(".lock"), "\(files)")
        #expect(files.contains { $0.hasPrefix("registry/") }, "\(files)")
        #expect(exposed.isEmpty, "readable by others: \(exposed)")
    }

    /// Every path under `folder` (relative), the folder included as ".", and those with a group or other bit.
    static func modes(under folder: String) -> (paths: [String], exposed: [String]) {
        var paths = ["."]
        var exposed = [String]()
        let all = (FileManager.default.enumerator(atPath: folder)?.allObjects as? [String]) ?? []
        for path in ["."] + all {
            var info = stat()
            guard lstat(folder + "/" + path, &info) == 0 else { continue }
            if path != "." { paths.append(path) }
            if info.st_mode & 0o077 != 0 { exposed.append("\(path) \(String(info.st_mode & 0o7777, radix: 8))") }
        }
        return (paths, exposed)
    }

    @Test func aSecondServerOnOneDataDirectoryStopsAtOnceAndTheFirstKeepsItsAddress() throws {
        let fleet = Fleet()
        let first = try fleet.startServer(["--wait-for-start"])
        let addressFile = fleet.dataDirectory + "/serve.address"
        let pid = try #require(fleet.processes["server"]?.processIdentifier)

        let second = try Self.run(["serve", "--data-dir", fleet.dataDirectory, "--listen", "127.0.0.1:0", "--wait-for-start"], seconds: 60)
        #expect(second.status == 1, "\(second.error)")
        let directory = fleet.dataDirectory
        let expected = "error: \(directory) is in use by another process (pid \(pid)): stop that server first "
            + "(flock-server admin stop --data-dir \(directory)), or give another --data-dir\n"
        #expect(second.error == expected)
        // The first server's address file is intact, and admin still finds it there.
        #expect(try String(contentsOfFile: addressFile, encoding: .utf8) == first + "\n")
        #expect(try fleet.status()["state"] as? String == "idle")

        // Once the first has stopped, the directory is free again.
        #expect(try fleet.admin(["stop"]).status == 0)
        fleet.processes["server"]?.waitUntilExit()
        try fleet.startServer(["--wait-for-start"], name: "server-2")
        #expect(try fleet.status()["state"] as? String == "idle")
    }

    /// Runs `flock-server ARGUMENTS`, killing it if it has not finished after `seconds` (so a server that should
    /// have refused to start fails the test instead of hanging it).
    static func run(_ arguments: [String], seconds: Double) throws -> (status: Int32, output: String, error: String) {
        let result = try TestData.run(TestData.executable("flock-server"), arguments, seconds: seconds)
        if result.timedOut { Issue.record("flock-server \(arguments) was still running after \(seconds) s") }
        return (result.status, result.output, result.error)
    }

    @Test func anEdgeKilledMidRoundIsDroppedAndTheRoundCompletesWithTheRest() throws {
        let fleet = Fleet()
        let server = try fleet.startServer([
            "--rounds", "2", "--min-clients", "2", "--epochs", "20", "--heartbeat", "0.3", "--edge-timeout", "1.5", "--wait-for-start",
        ] + Self.holdout)
        // Two quick edges and one slow one (30x the rows), which is killed while it trains round 1.
        try fleet.startEdge("quick-0", server: server, data: try fleet.slice("quick-0", from: 0, rows: 100))
        try fleet.startEdge("quick-1", server: server, data: try fleet.slice("quick-1", from: 100, rows: 100))
        try fleet.startEdge("slow", server: server, data: try fleet.slice("slow", from: 200, rows: 3000))
        try fleet.wait("3 edges") { try fleet.status()["connected_edges"] as? Int == 3 }
        #expect(try fleet.admin(["start"]).status == 0)
        try fleet.wait("round 1 to start") { try fleet.status()["current_round"] as? Int == 1 }
        // Under secure aggregation (on by default) the slow edge has shared its keys: the server must
        // rebuild its pairwise masks from the survivors' shares.
        try fleet.wait("the slow edge to train", seconds: 30) { fleet.log("slow").contains("round 1: keys shared") }
        fleet.kill9("slow")
        try fleet.wait("2 rounds") { try fleet.status()["completed_rounds"] as? Int == 2 }
        let rounds = try fleet.rounds()
        #expect(rounds.first?["state"] as? String == "completed")
        #expect(rounds.first?["selected"] as? Int == 3 && rounds.first?["participants"] as? Int == 2 && rounds.first?["dropped"] as? Int == 1)
        #expect(rounds.last?["participants"] as? Int == 2)
        let clients = try fleet.adminJSON("clients") as? [[String: Any]] ?? []
        #expect(clients.first(where: { $0["edge_id"] as? String == "slow" })?["state"] as? String == "gone")
    }

    @Test func edgesKilledInTheShareKeysAndMaskedInputPhasesDropOutAndTheSecureRoundCompletes() throws {
        let fleet = Fleet()
        let parts = try fleet.partition(6, scheme: "iid")
        let server = try fleet.startServer([
            "--rounds", "2", "--min-clients", "4", "--heartbeat", "0.3", "--edge-timeout", "1.5", "--wait-for-start",
        ] + Self.holdout)
        // Six edges: a complete neighbourhood of 6 with threshold 4. Edge 4 dies before its shares go out,
        // edge 5 after its shares went out but before its masked input did.
        let crashes = [4: "share-keys@1", 5: "masked-input@1"]
        for (i, part) in parts.enumerated() {
            try fleet.startEdge("edge-\(i)", server: server, data: part, extra: crashes[i].map { ["--crash-at", $0] } ?? [])
        }
        try fleet.wait("6 edges") { try fleet.status()["connected_edges"] as? Int == 6 }
        #expect(try fleet.admin(["start"]).status == 0)
        for (i, point) in crashes.sorted(by: { $0.key < $1.key }) {
            let process = fleet.processes["edge-\(i)"]
            process?.waitUntilExit()
            #expect(process?.terminationReason == .uncaughtSignal && process?.terminationStatus == SIGKILL)
            #expect(fleet.log("edge-\(i)").contains("--crash-at \(point): killing this process with SIGKILL"))
            // The device comes back at once: it registers again within the edge timeout, and the share-keys
            // phase must not wait for the keys it lost.
            if i == 4 { try fleet.startEdge("edge-4", server: server, data: parts[4]) }
        }
        try fleet.wait("2 rounds") { try fleet.status()["completed_rounds"] as? Int == 2 }

        let rounds = try fleet.rounds()
        #expect(rounds.first?["state"] as? String == "completed")
        #expect(rounds.first?["selected"] as? Int == 6 && rounds.first?["participants"] as? Int == 4 && rounds.first?["dropped"] as? Int == 2)
        let secure = rounds.first?["secure_aggregation"] as? [String: Any]
        #expect(secure?["dropped_per_phase"] as? [Int] == [0, 1, 1, 0], "\(rounds.first ?? [:])")
        let phases = secure?["phase_seconds"] as? [Double] ?? []
        #expect(phases.count == 4 && phases[1] < 10, "the share-keys phase waited for its 20 s deadline: \(phases)")
        #expect((rounds.first?["accuracy"] as? Double ?? 0) > 0.5)
        // The restarted edge trained round 2.
        #expect(rounds.last?["participants"] as? Int == 5, "\(rounds.last ?? [:])")
        let table = try fleet.admin(["rounds"])
        #expect(table.output.contains("secagg drops") && table.output.contains("0/1/1/0"), "\(table.output)")
    }

    @Test(arguments: [
        (["--codec", "rot+q2"], 5.0),
        (["--codec", "q8", "--secure-aggregation", "off"], 3.9),
        (["--codec", "topk:0.03,momentum=0.5,values=sign", "--secure-aggregation", "off"], 60.0),
        (["--codec", "q2+deflate", "--secure-aggregation", "off"], 20.0),
        (["--codec", "sketch:5x20000,q4"], 7.0),
        (["--codec", "sketch:5x20000,q4", "--secure-aggregation", "off"], 14.0),
    ])
    func edgesSendCompressedUpdatesAndTheServerDecodesThem(codec: [String], fewerBytes: Double) throws {
        let fleet = Fleet()
        _ = try fleet.startServerWithThreeEdges(["--rounds", "3", "--min-clients", "3", "--heartbeat", "0.3"] + codec + Self.holdout)
        try fleet.wait("3 rounds") { try fleet.status()["completed_rounds"] as? Int == 3 }
        let rounds = try fleet.rounds()
        #expect(rounds.allSatisfy { $0["participants"] as? Int == 3 })
        // What the edges sent, framing (and under secure aggregation keys and shares) included, against
        // three f32 updates of the 199,210-parameter 2nn.
        for round in rounds {
            let ratio = Double(3 * 199_210 * 4) / Double(round["upload_bytes"] as? Int ?? 1)
            #expect(ratio > fewerBytes, "\(codec): \(ratio)x fewer bytes than f32")
        }
        #expect((rounds.last?["accuracy"] as? Double ?? 0) > 0.75, "\(codec): \(rounds.last ?? [:])")
    }

    @Test func edgesRebuildAQuantizedDownloadCheckItsHashAndTrainFromIt() throws {
        let fleet = Fleet()
        _ = try fleet.startServerWithThreeEdges(
            ["--rounds", "3", "--min-clients", "3", "--heartbeat", "0.3", "--secure-aggregation", "off", "--download-codec", "q8+deflate"]
                + Self.holdout)
        try fleet.wait("3 rounds") { try fleet.status()["completed_rounds"] as? Int == 3 }
        let rounds = try fleet.rounds()
        #expect(rounds.allSatisfy { $0["participants"] as? Int == 3 })
        // Three downloads a round, framing included, against three f32 model files of about 797 KB.
        for round in rounds {
            let bytes = round["download_bytes"] as? Int ?? 0
            #expect(bytes > 3 * 190_000 && bytes < 3 * 210_000, "\(round)")
        }
        #expect((rounds.last?["accuracy"] as? Double ?? 0) > 0.75, "\(rounds.last ?? [:])")
        // `admin rounds` shows the download per selected edge: about 199 KB.
        // Columns are right-aligned under their headers.
        let lines = try fleet.admin(["rounds"]).output.split(separator: "\n").map { Array($0) }
        let header = String(try #require(lines.first))
        let end = try #require(header.range(of: "down KB/edge")).upperBound.utf16Offset(in: header)
        for line in lines.dropFirst() {
            let perEdge = Double(String(line[(end - 12)..<end]).trimmingCharacters(in: .whitespaces)) ?? 0
            #expect(perEdge > 190 && perEdge < 210, "\(String(line))")
        }
        // What the server keeps is its own full-precision model, not the served one.
        let saved = try ModelFile.read(from: fleet.dataDirectory + "/global.flockmdl")
        #expect(saved.hash.hex != (try fleet.status()["model_hash"] as? String))
    }

    @Test func anEdgeKilledWithSIGKILLKeepsItsTopKErrorFeedback() throws {
        let fleet = Fleet()
        let (server, parts) = try fleet.startServerWithThreeEdges(
            ["--rounds", "8", "--min-clients", "2", "--heartbeat", "0.3", "--secure-aggregation", "off", "--codec", "topk:0.03,momentum=0.5,values=sign"]
                + Self.holdout)
        try fleet.wait("2 rounds") { try fleet.status()["completed_rounds"] as? Int ?? 0 >= 2 }
        fleet.kill9("edge-0")
        let before = fleet.log("edge-0").components(separatedBy: "update accepted").count - 1
        try fleet.startEdge("edge-0", server: server, data: parts[0])
        try fleet.wait("8 rounds") { try fleet.status()["completed_rounds"] as? Int == 8 }
        fleet.stopAll()
        let after = fleet.log("edge-0").components(separatedBy: "update accepted").count - 1
        // The file counts every accepted update of edge-0, those before the kill included: the restarted
        // process read what the killed one had not sent.
        let path = fleet.folder + "/edge-0/topk-feedback-edge-0.flockefb"
        let (archive, _) = try Archive.read(path: path, magic: "FLOCKEFB", kind: "error-feedback file")
        let header = try JSONDecoder().decode([String: Int].self, from: archive.header)
        #expect(before >= 1 && after >= 1, "\(before) updates before the kill, \(after) after")
        // The edge writes the file after the server accepts an update and logs "update accepted" just after
        // that: a kill between the two leaves one more participation in the file than in the log.
        let participations = header["participations"] ?? -1
        #expect((before + after)...(before + after + 1) ~= participations, "\(header) against \(before) + \(after)")
        #expect(try archive.section("residual", path: path).contains { $0 != 0 })
    }

    @Test func theServerKilledWithSIGKILLKeepsItsSketchAndRangeState() throws {
        let fleet = Fleet()
        let parts = try fleet.partition(3, scheme: "iid")
        let arguments = ["--min-clients", "3", "--heartbeat", "0.3", "--edge-timeout", "2", "--codec", "sketch:5x20000,q4"] + Self.holdout
        let server = try fleet.startServer(["--rounds", "2"] + arguments)
        for (i, part) in parts.enumerated() { try fleet.startEdge("edge-\(i)", server: server, data: part) }
        try fleet.wait("2 rounds") { try fleet.status()["completed_rounds"] as? Int == 2 }
        fleet.kill9("server")
        // The checkpoint holds the FetchSGD sketches (100,000 cells each) and the cells' 98 block ranges.
        let saved = try #require(try RoundCheckpoint.read(fromFolder: fleet.dataDirectory))
        #expect(saved.codecSections["codec.fetch.error"]?.count == 100_000 && saved.codecSections["codec.fetch.momentum"]?.count == 100_000)
        #expect(saved.codecSections["codec.ranges"]?.count == 98)
        #expect(saved.codecSections["codec.fetch.error"]?.contains { $0 != 0 } == true)

        try fleet.startServer(["--rounds", "3", "--listen", server] + arguments, name: "server")
        try fleet.wait("round 3") { try fleet.status()["completed_rounds"] as? Int == 3 }
        #expect(!fleet.log("server").contains("starts over"), "\(fleet.log("server"))")
        #expect((try fleet.rounds().last?["accuracy"] as? Double ?? 0) > 0.75)
    }

    @Test func theServerKilledWithSIGKILLResumesFromTheLastCompletedRoundAndEdgesReconnect() throws {
        let fleet = Fleet()
        let parts = try fleet.partition(3, scheme: "iid")
        let arguments = ["--rounds", "8", "--min-clients", "3", "--heartbeat", "0.3", "--edge-timeout", "2", "--epochs", "3"] + Self.holdout
        let server = try fleet.startServer(arguments)
        for (i, part) in parts.enumerated() { try fleet.startEdge("edge-\(i)", server: server, data: part) }
        try fleet.wait("3 rounds") { (try fleet.status()["completed_rounds"] as? Int ?? 0) >= 3 }
        let before = try fleet.rounds().filter { $0["state"] as? String == "completed" }
        fleet.kill9("server")

        try fleet.startServer(arguments + ["--listen", server], name: "server")
        #expect(fleet.log("server").contains("listening on \(server)"))
        let resumedAt = try fleet.status()["completed_rounds"] as? Int ?? 0
        #expect(resumedAt >= before.count)
        try fleet.wait("8 rounds") { try fleet.status()["completed_rounds"] as? Int == 8 }

        let after = try fleet.rounds()
        let completed = after.filter { $0["state"] as? String == "completed" }
        #expect(completed.compactMap { $0["model_version"] as? Int } == Array(1...8))
        // Every round completed before the kill is still there, unchanged.
        for old in before {
            let same = after.first { $0["round"] as? Int == old["round"] as? Int }
            #expect(same?["accuracy"] as? Double == old["accuracy"] as? Double && same?["participants"] as? Int == old["participants"] as? Int)
        }
        // The same three edge processes reconnected and trained the rounds after the restart.
        #expect(completed.last?["participants"] as? Int == 3)
        for i in 0..<3 {
            #expect(fleet.processes["edge-\(i)"]?.isRunning == true)
            #expect(fleet.log("edge-\(i)").components(separatedBy: "registered").count >= 3, "edge-\(i) registered again after the restart")
        }
        #expect((completed.last?["accuracy"] as? Double ?? 0) > 0.8)
    }
}

import FlockCore
import FlockTestSupport
import Foundation
import Testing

/// Real `flock-server serve` and `flock-edge run` processes on 127.0.0.1, their logs in files, and the
/// admin command line, for the integration tests.
final class Fleet: @unchecked Sendable {
    let folder = TestData.temporaryFolder()
    var dataDirectory: String { folder + "/server" }
    private(set) var processes: [String: Process] = [:]

    deinit { stopAll() }

    /// Starts serve with `arguments` (plus --data-dir and, unless given, --listen 127.0.0.1:0) and waits
    /// for the address file. Returns `HOST:PORT`.
    @discardableResult
    func startServer(_ arguments: [String], name: String = "server") throws -> String {
        let address = dataDirectory + "/serve.address"
        try? FileManager.default.removeItem(atPath: address)
        var all = ["serve", "--data-dir", dataDirectory] + arguments
        if !arguments.contains("--listen") { all += ["--listen", "127.0.0.1:0"] }
        try start(name, TestData.executable("flock-server"), all)
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: address, encoding: .utf8), text.hasSuffix("\n") {
                return text.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            guard processes[name]?.isRunning == true else { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw CoreError(.io, "serve did not start: \(log(name))")
    }

    /// Starts an edge on `data` with id `id`.
    func startEdge(_ id: String, server: String, data: String, extra: [String] = []) throws {
        try start(id, TestData.executable("flock-edge"), ["run", "--server", server, "--data", data, "--id", id, "--state-dir", folder + "/" + id] + extra)
    }

    private func start(_ name: String, _ executable: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        _ = FileManager.default.createFile(atPath: folder + "/\(name).log", contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: folder + "/\(name).log"))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        processes[name] = process
    }

    /// SIGKILL, as a crash or power loss.
    func kill9(_ name: String) {
        guard let process = processes[name] else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func stopAll() {
        for process in processes.values where process.isRunning { kill(process.processIdentifier, SIGKILL) }
        for process in processes.values { process.waitUntilExit() }
    }

    func log(_ name: String) -> String { (try? String(contentsOfFile: folder + "/\(name).log", encoding: .utf8)) ?? "" }

    /// Runs `flock-server admin ARGS --data-dir DIR`.
    func admin(_ arguments: [String]) throws -> TestData.ProcessResult {
        try TestData.run(TestData.executable("flock-server"), ["admin"] + arguments + ["--data-dir", dataDirectory])
    }

    /// `admin WHAT --json`, parsed.
    func adminJSON(_ what: String) throws -> Any {
        let result = try admin([what, "--json"])
        guard result.status == 0 else { throw CoreError(.io, "admin \(what): \(result.error)") }
        return try JSONSerialization.jsonObject(with: Data(result.output.utf8))
    }

    func status() throws -> [String: Any] { try adminJSON("status") as? [String: Any] ?? [:] }
    func rounds() throws -> [[String: Any]] { try adminJSON("rounds") as? [[String: Any]] ?? [] }

    /// Polls until `condition` holds, or fails after `seconds`.
    func wait(_ what: String, seconds: Double = 120, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if (try? condition()) == true { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw CoreError(.io, "timed out waiting for \(what); server log:\n\(log("server").suffix(2000))")
    }

    /// Partitions mnist5k-train into `clients` files with `scheme`; returns their paths.
    func partition(_ clients: Int, scheme: String) throws -> [String] {
        let out = folder + "/parts"
        let result = try TestData.run(TestData.executable("flock-server"), [
            "data", "partition", "--data", TestData.path("mnist5k-train.csv"), "--clients", String(clients), "--scheme", scheme, "--out", out,
        ])
        guard result.status == 0 else { throw CoreError(.io, result.error) }
        return (0..<clients).map { out + "/client-\($0).csv" }
    }

    /// Starts a server with `arguments` and three edges `edge-0` … `edge-2` on an iid partition of
    /// mnist5k-train; returns the server's address and the edges' data files.
    func startServerWithThreeEdges(_ arguments: [String]) throws -> (server: String, parts: [String]) {
        let parts = try partition(3, scheme: "iid")
        let server = try startServer(arguments)
        for (i, part) in parts.enumerated() { try startEdge("edge-\(i)", server: server, data: part) }
        return (server, parts)
    }

    /// Writes the first `rows` rows of mnist5k-train to a file; returns its path.
    func slice(_ name: String, from: Int, rows: Int) throws -> String {
        let lines = try String(contentsOfFile: TestData.path("mnist5k-train.csv"), encoding: .utf8).split(separator: "\n")
        let path = folder + "/\(name).csv"
        try (lines[from..<(from + rows)].joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

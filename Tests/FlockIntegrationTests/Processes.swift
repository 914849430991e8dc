import FlockCore
import FlockTestSupport
import Foundation
import Testing

/// Real `flock-server serve` and `flock-edge run` processes on 127.0.0.1, their logs in files, and the
/// admin command line, for the integration tests.
final class Fleet: ProcessGroup, @unchecked Sendable {
    var dataDirectory: String { folder + "/server" }

    /// Starts serve with `arguments` (plus --data-dir and, unless given, --listen 127.0.0.1:0) and waits
    /// for the address file. Returns `HOST:PORT`.
    @discardableResult
    func startServer(_ arguments: [String], name: String = "server") throws -> String {
        try startServer(name, dataDirectory: dataDirectory, arguments, seconds: 30)
    }

    /// Starts an edge on `data` with id `id` (with `--ca` of the server's data directory, unless `extra` says how
    /// to reach the server).
    func startEdge(_ id: String, server: String, data: String, extra: [String] = []) throws {
        try start(
            id, TestData.executable("flock-edge"),
            ["run", "--server", server, "--data", data, "--id", id, "--state-dir", folder + "/" + id] + extra + edgeTrust(extra))
    }

    /// Runs `flock-server admin ARGS --data-dir DIR` (which trusts DIR/tls/ca.pem; `--tls off` after a plaintext server).
    func admin(_ arguments: [String]) throws -> TestData.ProcessResult {
        let plaintext = serverCA == nil && !arguments.contains("--tls") ? ["--tls", "off"] : []
        return try TestData.run(TestData.executable("flock-server"), ["admin"] + arguments + ["--data-dir", dataDirectory] + plaintext)
    }

    /// `admin WHAT --json`, parsed.
    func adminJSON(_ what: String) throws -> Any {
        let result = try admin([what, "--json"])
        guard result.status == 0 else { throw CoreError(.io, "admin \(what): \(result.error)") }
        return try JSONSerialization.jsonObject(with: Data(result.output.utf8))
    }

    func status() throws -> [String: Any] { try adminJSON("status") as? [String: Any] ?? [:] }
    func rounds() throws -> [[String: Any]] { try adminJSON("rounds") as? [[String: Any]] ?? [] }

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

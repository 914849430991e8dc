import FlockCore
import Foundation

/// Real processes of the built executables for one test, each logging to `NAME.log` in one temporary folder;
/// every process still running is killed when the group goes away.
open class ProcessGroup: @unchecked Sendable {
    // Used from one test's thread only.
    /// The test's folder: logs, and whatever the test puts there.
    public let folder = TestData.temporaryFolder()
    /// The processes started, by name.
    public private(set) var processes: [String: Process] = [:]

    /// The CA of the last server started with TLS (its `DATA_DIR/tls/ca.pem`), which edges are given as `--ca`.
    public private(set) var serverCA: String?

    /// An empty group.
    public init() {}

    /// How an edge's `run` reaches the server: `--ca SERVER_CA` after a TLS server was started (`--tls off` when
    /// none was), unless `arguments` already say (`--tls`, `--ca`, `--server-fingerprint`).
    public func edgeTrust(_ arguments: [String]) -> [String] {
        if arguments.contains(where: { ["--tls", "--ca", "--server-fingerprint"].contains($0) }) { return [] }
        return serverCA.map { ["--ca", $0] } ?? ["--tls", "off"]
    }

    deinit { stopAll() }

    /// Starts `flock-server serve --data-dir DATA_DIR` with `arguments` (and `--listen 127.0.0.1:0` and
    /// `--enrolment open` unless given) under `name`, waits for its address file, and returns `HOST:PORT`.
    /// - Throws: ``CoreError`` with the server's log when it stops or has not started within `seconds`.
    @discardableResult
    public func startServer(_ name: String = "server", dataDirectory: String, _ arguments: [String] = [], seconds: Double = 60) throws -> String {
        let address = dataDirectory + "/serve.address"
        try? FileManager.default.removeItem(atPath: address)
        var all = ["serve", "--data-dir", dataDirectory] + arguments
        if !arguments.contains("--listen") { all += ["--listen", "127.0.0.1:0"] }
        // Edges register under any id unless a test is about enrolled devices (then it passes --enrolment certificate).
        if !arguments.contains("--enrolment") { all += ["--enrolment", "open"] }
        let plaintext = zip(arguments, arguments.dropFirst()).contains { $0 == "--tls" && $1 == "off" }
        serverCA = plaintext ? nil : dataDirectory + "/tls/ca.pem"
        try start(name, TestData.executable("flock-server"), all)
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: address, encoding: .utf8), text.hasSuffix("\n") {
                return text.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            guard processes[name]?.isRunning == true else { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw CoreError(.io, "serve did not start: \(log(name))")
    }

    /// Starts `executable` with `arguments` under `name`, its output and errors going to `NAME.log`.
    public func start(_ name: String, _ executable: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let path = folder + "/\(name).log"
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        processes[name] = process
    }

    /// Whether `name` still runs.
    public func isRunning(_ name: String) -> Bool { processes[name]?.isRunning == true }

    /// SIGKILL, as a crash or power loss.
    public func kill9(_ name: String) {
        guard let process = processes[name] else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Kills every process still running and waits for all of them.
    public func stopAll() {
        for process in processes.values where process.isRunning { kill(process.processIdentifier, SIGKILL) }
        for process in processes.values { process.waitUntilExit() }
    }

    /// Everything `name` has written so far.
    public func log(_ name: String) -> String { (try? String(contentsOfFile: folder + "/\(name).log", encoding: .utf8)) ?? "" }

    /// How many lines of `name`'s log contain `text`.
    public func count(_ name: String, _ text: String) -> Int { log(name).split(separator: "\n").filter { $0.contains(text) }.count }

    /// Polls until `condition` holds, or fails after `seconds` with the end of every log.
    public func wait(_ what: String, seconds: Double = 120, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if (try? condition()) == true { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        let logs = processes.keys.sorted().map { "\($0):\n\(log($0).suffix(1500))" }.joined(separator: "\n")
        throw CoreError(.io, "timed out waiting for \(what); logs:\n\(logs)")
    }
}

import FlockCore
import FlockTestSupport
import Foundation
import Testing

/// Real `flock-server serve` and `flock-edge run` processes on 127.0.0.1 for the edge's tests, each logging
/// to a file in one temporary folder; every process is killed when the value goes away.
final class EdgeProcesses: @unchecked Sendable {
    // Used from one test's thread only.
    let folder = TestData.temporaryFolder()
    private(set) var processes: [String: Process] = [:]

    deinit { stopAll() }

    /// Starts `flock-server serve --data-dir DIR` with `arguments` (and `--listen 127.0.0.1:0` unless given), waits
    /// for its address file, and returns `HOST:PORT`.
    @discardableResult
    func startServer(_ name: String = "server", dataDirectory: String, _ arguments: [String] = []) throws -> String {
        let address = dataDirectory + "/serve.address"
        try? FileManager.default.removeItem(atPath: address)
        var all = ["serve", "--data-dir", dataDirectory] + arguments
        if !arguments.contains("--listen") { all += ["--listen", "127.0.0.1:0"] }
        try start(name, TestData.executable("flock-server"), all)
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: address, encoding: .utf8), text.hasSuffix("\n") {
                return text.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            guard processes[name]?.isRunning == true else { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw CoreError(.io, "serve did not start: \(log(name))")
    }

    /// Starts `flock-edge ARGUMENTS` under `name`.
    func startEdge(_ name: String, _ arguments: [String]) throws {
        try start(name, TestData.executable("flock-edge"), arguments)
    }

    private func start(_ name: String, _ executable: String, _ arguments: [String]) throws {
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
    func isRunning(_ name: String) -> Bool { processes[name]?.isRunning == true }

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

    /// Everything `name` has written so far.
    func log(_ name: String) -> String { (try? String(contentsOfFile: folder + "/\(name).log", encoding: .utf8)) ?? "" }

    /// How many lines of `name`'s log contain `text`.
    func count(_ name: String, _ text: String) -> Int { log(name).split(separator: "\n").filter { $0.contains(text) }.count }

    /// Polls until `condition` holds, or fails after `seconds` with the logs.
    func wait(_ what: String, seconds: Double = 60, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if (try? condition()) == true { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        let logs = processes.keys.sorted().map { "\($0):\n\(log($0).suffix(1500))" }.joined(separator: "\n")
        throw CoreError(.io, "timed out waiting for \(what); logs:\n\(logs)")
    }
}

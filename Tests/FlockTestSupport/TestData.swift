import FlockCore
import Foundation

/// Paths to the real data sets that `make data` writes, temporary folders, seeded synthetic data, and the
/// built executables, shared by every test target.
public enum TestData {
    /// The repository root, found from this file's path (Tests/FlockTestSupport/TestData.swift).
    public static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// `data/NAME` under the repository root.
    public static func path(_ name: String) -> String { root + "/data/" + name }

    /// Loads `data/NAME`; the error tells the reader to run `make data`.
    public static func load(_ name: String) throws -> Dataset {
        let p = path(name)
        guard FileManager.default.fileExists(atPath: p) else {
            throw CoreError(.fileNotFound, "\(p) is missing: run `make data` first (make test does)")
        }
        return try Dataset.loadCSV(path: p)
    }

    /// A fresh temporary folder.
    public static func temporaryFolder() -> String {
        let p = FileManager.default.temporaryDirectory.appendingPathComponent("flock-test-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        return p
    }

    /// `rows` random rows of `features` normal features with labels in 0..<classes, seeded.
    public static func random(rows: Int, features: Int, classes: Int, seed: UInt64) -> Dataset {
        var rng = SeededGenerator(seed: seed)
        let f = (0..<(rows * features)).map { _ in Float(rng.nextNormal()) }
        let l = (0..<rows).map { _ in Int32(rng.nextIndex(below: classes)) }
        return Dataset(features: f, labels: l, featureCount: features)
    }
}

extension TestData {
    /// The bytes of a file (empty when it cannot be read).
    public static func bytes(_ path: String) -> [UInt8] {
        (try? FileIO.read(path)) ?? []
    }

    /// The folder holding the built products (the test bundle sits beside the executables).
    public static let productsFolder: String = {
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        while url.path != "/" && !url.lastPathComponent.hasSuffix(".xctest") { url.deleteLastPathComponent() }
        if url.path == "/" { url = URL(fileURLWithPath: CommandLine.arguments[0]) }
        return url.deletingLastPathComponent().path
    }()

    /// Path of a built executable (`flock-edge`, `flock-server`).
    public static func executable(_ name: String) -> String { productsFolder + "/" + name }

    /// Result of running a process.
    public struct ProcessResult: Sendable {
        /// Exit status.
        public var status: Int32
        /// Standard output.
        public var output: String
        /// Standard error.
        public var error: String
        /// Whether the process was still running at the deadline (it was killed then).
        public var timedOut = false
    }

    /// Runs an executable to completion and captures its output (through files, so that neither stream can fill
    /// up and stall it), killing it if it still runs after `seconds`: a command that should have stopped fails
    /// its test instead of hanging it.
    /// - Parameter environment: variables set on top of this process's.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:], seconds: Double = 600) throws -> ProcessResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let folder = temporaryFolder()
        FileManager.default.createFile(atPath: folder + "/out", contents: nil)
        FileManager.default.createFile(atPath: folder + "/err", contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: folder + "/out"))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: folder + "/err"))
        try process.run()
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        let timedOut = process.isRunning
        if timedOut { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return ProcessResult(
            status: process.terminationStatus, output: (try? String(contentsOfFile: folder + "/out", encoding: .utf8)) ?? "",
            error: (try? String(contentsOfFile: folder + "/err", encoding: .utf8)) ?? "", timedOut: timedOut)
    }
}

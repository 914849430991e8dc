import FlockCore
import Foundation

/// Paths to the real data sets that `make data` writes, and temporary folders.
enum TestData {
    /// The repository root, found from this file's path (Tests/FlockServerTests/TestData.swift).
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// `data/NAME` under the repository root.
    static func path(_ name: String) -> String { root + "/data/" + name }

    /// Loads `data/NAME`; the error tells the reader to run `make data`.
    static func load(_ name: String) throws -> Dataset {
        let p = path(name)
        guard FileManager.default.fileExists(atPath: p) else {
            throw CoreError(.fileNotFound, "\(p) is missing: run `make data` first (make test does)")
        }
        return try Dataset.loadCSV(path: p)
    }

    /// A fresh temporary folder.
    static func temporaryFolder() -> String {
        let p = FileManager.default.temporaryDirectory.appendingPathComponent("flock-server-test-\(UUID().uuidString)")
            .path
        try? FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        return p
    }

    /// The bytes of a file (empty when it cannot be read).
    static func bytes(_ path: String) -> [UInt8] {
        (try? FileIO.read(path)) ?? []
    }
}

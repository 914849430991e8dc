import FlockCore
import Foundation

/// Paths to the real data sets that `make data` writes, and small synthetic helpers.
enum TestData {
    /// The repository root, found from this file's path (Tests/FlockCoreTests/Support/TestData.swift).
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }
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
        let p = FileManager.default.temporaryDirectory.appendingPathComponent("flock-test-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        return p
    }

    /// `rows` random rows of `features` normal features with labels in 0..<classes, seeded.
    static func random(rows: Int, features: Int, classes: Int, seed: UInt64) -> Dataset {
        var rng = SeededGenerator(seed: seed)
        let f = (0..<(rows * features)).map { _ in Float(rng.nextNormal()) }
        let l = (0..<rows).map { _ in Int32(rng.nextIndex(below: classes)) }
        return Dataset(features: f, labels: l, featureCount: features)
    }
}

import FlockCore
import Foundation
import Testing

/// A fresh directory under the system temporary directory, removed by `remove()`.
private struct ScratchDirectory {
    let path: String

    init() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("flock-csv-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        path = url.path
    }

    /// Writes `contents` to a file in this directory and returns its path.
    func file(_ name: String, _ contents: String) throws -> String {
        let filePath = path + "/" + name
        try Data(contents.utf8).write(to: URL(fileURLWithPath: filePath))
        return filePath
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

@Suite struct CSVTests {
    // MARK: Accepted input

    @Test func readsLabelsAndFeatures() throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        let path = try dir.file("a.csv", "3,0,255,17\n0,1,2,3\n9,100,0,0\n")
        let data = try Dataset.loadCSV(path: path)
        #expect(data.count == 3)
        #expect(data.featureCount == 3)
        #expect(data.labels == [3, 0, 9])
        #expect(data.features == [0, 255, 17, 1, 2, 3, 100, 0, 0])
        #expect(data.source == path)
    }

    @Test(arguments: [
        "1,2\n3,4\n",  // plain
        "1,2\r\n3,4\r\n",  // CRLF
        "1,2\n3,4",  // no final newline
        "1,2\n3,4\n\n",  // blank final line
        "1,2\r\n3,4\r\n\r\n  \n",  // several blank final lines
        "\u{FEFF}1,2\n3,4\n",  // UTF-8 byte order mark
        " 1 , 2\t\n+3,\t4 \n",  // spaces, tabs, a plus sign
        "1.0,2.0\n3e0,4e0\n",  // integral values written as decimals
    ])
    func acceptsLineEndingsAndSpacing(contents: String) throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        let data = try Dataset.loadCSV(path: try dir.file("a.csv", contents))
        #expect(data.labels == [1, 3])
        #expect(data.features == [2, 4])
        #expect(data.featureCount == 1)
    }

    @Test func parsesDecimalNumbersCorrectlyRounded() throws {
        let tokens = [
            "0", "-0", "7", "-12", "+5", ".5", "5.", "0.1", "-2.5E-2", "1.25e-3", "3.4028235e38", "1e-45", "1e-50",
            "16777217", "123456789012", "0.30000000000000004", "1.00000000000000000000000000001", "-1e-10",
            "2.7182818284590452353602874713527",
        ]
        let expected: [Float] = [
            0, -0.0, 7, -12, 5, 0.5, 5, 0.1, -2.5e-2, 1.25e-3, 3.4028235e38, .leastNonzeroMagnitude, 0,
            16_777_216, 1.2345679e11, 0.3, 1, -1e-10, 2.7182817,
        ]
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        let path = try dir.file("n.csv", "0," + tokens.joined(separator: ",") + "\n")
        let data = try Dataset.loadCSV(path: path)
        #expect(data.features.count == tokens.count)
        for (i, token) in tokens.enumerated() {
            #expect(data.features[i] == expected[i], "\(token)")
            #expect(data.features[i] == Float(token)!, "\(token) differs from the standard library")
        }
    }

    // MARK: Errors

    @Test func missingFile() throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        let path = dir.path + "/absent.csv"
        let error = #expect(throws: CoreError.self) { try Dataset.loadCSV(path: path) }
        #expect(error?.code == .fileNotFound)
        #expect(error?.message == "\(path): no such file")
    }

    /// Each malformed file and the exact start of its message after the path.
    @Test(arguments: [
        ("", ": file is empty"),
        ("\n\r\n  \n", ": file is empty"),
        ("0,1,2\n1,2\n", ":2: expected 3 values, found 2"),
        ("0,1,2\n1,2,3\n2,3,4\n3,4,5,6\n", ":4: expected 3 values, found 4"),
        ("0,1,2\r\n1,2,3\r\n2,3\r\n", ":3: expected 3 values, found 2"),
        ("0,1,2\n1,2,abc\n", ":2: column 3: 'abc' is not a number"),
        ("0,1,2\n1,2,3\n2,3,4\n3,1x,4\n", ":4: column 2: '1x' is not a number"),
        ("0,1,2\n1,2,1e\n", ":2: column 3: '1e' is not a number"),
        ("0,1,2\n1,2,--3\n", ":2: column 3: '--3' is not a number"),
        ("0,1,2\n1,,3\n", ":2: column 2: empty value where a number was expected"),
        ("0,1,2\n1,2,3,\n", ":2: expected 3 values, found 4"),
        ("0,1,2\n1,nan,3\n", ":2: column 2: 'nan' is not finite"),
        ("0,1,2\n1,2,-inf\n", ":2: column 3: '-inf' is not finite"),
        ("0,1,1e39\n", ":1: column 3: '1e39' is not finite"),
        ("0,1,2\n-1,2,3\n", ":2: column 1: label '-1' is negative"),
        ("0,1,2\n1,2,3\n2.5,2,3\n", ":3: column 1: label '2.5' is not an integer"),
        ("0,1,2\ncat,2,3\n", ":2: column 1: 'cat' is not a number"),
        ("0,1,2\n99999999999,2,3\n", ":2: column 1: label '99999999999' is too large"),
        ("0,1,2\n\n1,2,3\n", ":2: empty line; expected 3 values"),
        ("\n0,1,2\n", ":1: empty line"),
        ("7\n8\n", ":1: found 1 value; expected a label followed by at least one feature"),
    ])
    func refusesMalformedFiles(contents: String, expectedMessage: String) throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        let path = try dir.file("bad.csv", contents)
        let error = #expect(throws: CoreError.self) { try Dataset.loadCSV(path: path) }
        #expect(error?.code == .invalidData)
        let message = try #require(error?.message)
        #expect(message.hasPrefix(path + expectedMessage), "\(message)")
        #expect(!message.contains("\n"))
    }

    @Test func raggedRowMessageIsExact() throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        let good = (0..<10).map { _ in "1," + Array(repeating: "0", count: 784).joined(separator: ",") }
        let short = "2," + Array(repeating: "0", count: 783).joined(separator: ",")
        let path = try dir.file("ragged.csv", (good + [short] + good).joined(separator: "\n") + "\n")
        let error = #expect(throws: CoreError.self) { try Dataset.loadCSV(path: path) }
        #expect(error?.message == "\(path):11: expected 785 values, found 784")
    }

    @Test func reportsTheLineNumberDeepInTheFile() throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        var lines = (0..<1000).map { "\($0 % 10),\($0),0.5" }
        lines[736] = "6,736,0.5q"
        let path = try dir.file("deep.csv", lines.joined(separator: "\r\n"))
        let error = #expect(throws: CoreError.self) { try Dataset.loadCSV(path: path) }
        #expect(error?.message == "\(path):737: column 3: '0.5q' is not a number")
    }

    @Test func wideFirstLineThenManyShortLines() throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        let wide = "0," + Array(repeating: "1", count: 5000).joined(separator: ",")
        let path = try dir.file("wide.csv", ([wide] + Array(repeating: "1,2", count: 20000)).joined(separator: "\n"))
        let error = #expect(throws: CoreError.self) { try Dataset.loadCSV(path: path) }
        #expect(error?.message == "\(path):2: expected 5001 values, found 2")

        let exact = try dir.file("exact.csv", "0,1\n1,2\n2,3")
        #expect(try Dataset.loadCSV(path: exact).features == [1, 2, 3])
    }

    @Test func longTokensAreShortenedInMessages() throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        let path = try dir.file("long.csv", "0," + String(repeating: "x", count: 500) + "\n")
        let error = #expect(throws: CoreError.self) { try Dataset.loadCSV(path: path) }
        let message = try #require(error?.message)
        #expect(message.count < path.count + 120)
    }

    // MARK: Writing

    @Test func writeThenReadRoundTrips() throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        var generator = SeededGenerator(seed: 7)
        var features: [Float] = [
            0, 255, -3, 0.1, -2.5e-7, .leastNonzeroMagnitude, 3.4028235e38, -3.4028235e38, 16_777_216, 1e20, 1e15,
            123.456, -0.0,
            .leastNormalMagnitude, .ulpOfOne, 1 / 3,
        ]
        while features.count < 16 * 50 {
            let value = Float(generator.nextNormal() * 100)
            features.append(features.count % 3 == 0 ? value.rounded() : value)
        }
        let labels = (0..<50).map { Int32($0 % 7) }
        let original = Dataset(features: features, labels: labels, featureCount: 16)
        let path = dir.path + "/round.csv"
        try original.writeCSV(path: path)
        let loaded = try Dataset.loadCSV(path: path)
        #expect(loaded.labels == original.labels)
        #expect(loaded.featureCount == original.featureCount)
        #expect(loaded.features.map(\.bitPattern) == original.features.map { ($0 == 0 ? 0 : $0).bitPattern })

        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.hasPrefix("0,0,255,-3,0.1,-2.5e-07,"))
        #expect(text.hasSuffix("\n"))
        // Only the target file is left behind: the temporary file was renamed.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["round.csv"])
    }

    @Test func writeReplacesAnExistingFile() throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        let path = try dir.file("out.csv", "old contents that are longer than the new ones\n")
        try Dataset(features: [1, 2], labels: [4], featureCount: 2).writeCSV(path: path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "4,1,2\n")
    }

    @Test func writeRefusesNonFiniteFeaturesAndMissingDirectories() throws {
        let dir = try ScratchDirectory()
        defer { dir.remove() }
        let bad = Dataset(features: [1, .nan], labels: [0], featureCount: 2)
        let nonFinite = #expect(throws: CoreError.self) { try bad.writeCSV(path: dir.path + "/nan.csv") }
        #expect(nonFinite?.code == .invalidData)
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/nan.csv"))

        let good = Dataset(features: [1, 2], labels: [0], featureCount: 2)
        let missing = #expect(throws: CoreError.self) { try good.writeCSV(path: dir.path + "/no/such/dir/x.csv") }
        #expect(missing?.code == .io)
        #expect(missing?.message.contains("does not exist") == true)
    }

    // MARK: The real data set

    /// `data/mnist5k-train.csv` at the repository root, written by `make data`.
    @Test func loadsMNIST5kTrainingSet() throws {
        let root = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let path = root.appendingPathComponent("data/mnist5k-train.csv").path
        guard FileManager.default.fileExists(atPath: path) else {
            Issue.record("\(path) is missing; run `make data` first to download and convert the data sets")
            return
        }
        let data = try Dataset.loadCSV(path: path)
        #expect(data.count == 4000)
        #expect(data.featureCount == 784)
        #expect(data.features.max() == 255)
        #expect(data.features.min() == 0)
        let balance = ClassBalance(labels: data.labels, classCount: 10)
        #expect(balance.counts == Array(repeating: 400, count: 10))
        #expect(balance.imbalanceRatio == 1)
    }
}

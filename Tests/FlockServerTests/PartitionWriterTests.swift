import FlockCore
import FlockServer
import Foundation
import FlockTestSupport
import Testing

@Suite struct PartitionWriterTests {
    static let schemes: [PartitionScheme] = [.iid, .shards, .dirichlet(alpha: 0.5)]

    @Test(arguments: schemes)
    func writesEveryClientAndAManifestThatMatches(scheme: PartitionScheme) throws {
        let data = try TestData.load("mnist5k-train.csv")
        let folder = TestData.temporaryFolder() + "/parts"  // created by the writer
        defer { try? FileManager.default.removeItem(atPath: folder) }

        let manifest = try PartitionWriter(scheme: scheme, clients: 20, seed: 7).write(data, toFolder: folder)

        #expect(manifest.scheme == scheme.description)
        #expect(manifest.seed == 7)
        #expect(manifest.clients == 20)
        #expect(manifest.classes == 10)
        #expect(manifest.rows == 4000)
        #expect(manifest.partitions.count == 20)
        #expect(manifest.partitions.reduce(0) { $0 + $1.rows } == 4000)
        #expect(try PartitionManifest.read(fromFolder: folder) == manifest)

        let expected = ["manifest.json"] + (0..<20).map { "client-\($0).csv" }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).sorted() == expected.sorted())

        var classTotals = [Int](repeating: 0, count: 10)
        for (index, part) in manifest.partitions.enumerated() {
            #expect(part.client == index)
            #expect(part.file == "client-\(index).csv")
            let path = folder + "/" + part.file
            if part.rows == 0 {
                #expect(TestData.bytes(path).isEmpty)
                continue
            }
            let rows = try Dataset.loadCSV(path: path)
            #expect(rows.count == part.rows)
            #expect(rows.featureCount == 784)
            #expect(ClassBalance(labels: rows.labels, classCount: 10).counts == part.labelCounts)
            for (c, n) in part.labelCounts.enumerated() { classTotals[c] += n }
        }
        #expect(classTotals == ClassBalance(labels: data.labels, classCount: 10).counts)
    }

    @Test func clientFilesHoldTheOriginalRows() throws {
        let data = try TestData.load("mnist5k-train.csv")
        let folder = TestData.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }

        try PartitionWriter(scheme: .shards, clients: 5, seed: 1).write(data, toFolder: folder)
        let parts = try PartitionScheme.shards.partition(labels: data.labels, clients: 5, seed: 1)
        for (client, indices) in parts.enumerated() {
            #expect(
                try Dataset.loadCSV(path: folder + "/client-\(client).csv").features == data.subset(indices).features
            )
        }
    }

    @Test(arguments: schemes)
    func sameSeedGivesByteIdenticalFiles(scheme: PartitionScheme) throws {
        let data = try TestData.load("mnist5k-train.csv")
        let first = TestData.temporaryFolder()
        let second = TestData.temporaryFolder()
        let other = TestData.temporaryFolder()
        defer {
            for folder in [first, second, other] { try? FileManager.default.removeItem(atPath: folder) }
        }

        let writer = PartitionWriter(scheme: scheme, clients: 10, seed: 3)
        try writer.write(data, toFolder: first)
        try writer.write(data, toFolder: second)
        try PartitionWriter(scheme: scheme, clients: 10, seed: 4).write(data, toFolder: other)

        let names = ["manifest.json"] + (0..<10).map { "client-\($0).csv" }
        for name in names {
            let bytes = TestData.bytes(first + "/" + name)
            #expect(!bytes.isEmpty, "\(name) is empty")
            #expect(bytes == TestData.bytes(second + "/" + name), "\(name) differs between runs with the same seed")
        }
        let differing = names.filter { TestData.bytes(first + "/" + $0) != TestData.bytes(other + "/" + $0) }
        #expect(!differing.isEmpty, "another seed gave the same split")
    }

    @Test func rewritingWithFewerClientsRemovesTheEarlierSplitsExtraFiles() throws {
        let data = try TestData.load("mnist5k-train.csv").subset(Array(0..<400))
        let folder = TestData.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        #expect(FileManager.default.createFile(atPath: folder + "/notes.txt", contents: Data("keep".utf8)))

        try PartitionWriter(scheme: .iid, clients: 8, seed: 0).write(data, toFolder: folder)
        try PartitionWriter(scheme: .iid, clients: 3, seed: 0).write(data, toFolder: folder)

        let names = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        #expect(names == ["client-0.csv", "client-1.csv", "client-2.csv", "manifest.json", "notes.txt"])
        #expect(try PartitionManifest.read(fromFolder: folder).clients == 3)
    }

    @Test func tooManyClientsIsRefusedBeforeAnythingIsWritten() throws {
        let data = try TestData.load("mnist5k-train.csv").subset(Array(0..<10))
        let folder = TestData.temporaryFolder() + "/never"
        defer { try? FileManager.default.removeItem(atPath: folder) }

        #expect {
            try PartitionWriter(scheme: .shards, clients: 6, seed: 0).write(data, toFolder: folder)
        } throws: { error in
            (error as? CoreError)?.code == .invalidArgument
        }
        #expect(!FileManager.default.fileExists(atPath: folder))
    }

    @Test func summaryListsEveryClient() throws {
        let manifest = PartitionManifest(
            scheme: "shards",
            seed: 0,
            clients: 2,
            classes: 3,
            rows: 5,
            source: "x.csv",
            partitions: [
                .init(client: 0, file: "client-0.csv", rows: 4, labelCounts: [1, 3, 0]),
                .init(client: 1, file: "client-1.csv", rows: 1, labelCounts: [0, 0, 1]),
            ]
        )
        #expect(
            manifest.renderSummary() == """
                client  rows  classes present  largest class share
                     0     4                2                75.0%
                     1     1                1               100.0%
                total 5 rows in 2 clients (shards, seed 0)
                """
        )
        #expect(manifest.partitions[0].largestClassShare == 0.75)
    }
}

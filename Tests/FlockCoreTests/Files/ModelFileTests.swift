import FlockCore
import Foundation
import FlockTestSupport
import Testing

/// Model files: exact round trip, stable content hash, and refusal of anything damaged.
@Suite struct ModelFileTests {
    static func sample() throws -> ModelFile {
        let model = try Model(spec: ModelSpec.preset("mlp:8", inputFeatures: 5, classCount: 3), seed: 3)
        return ModelFile(model: model, scaling: .max(255), metadata: ["trained_by": "test"])
    }

    @Test func roundTripKeepsEverything() throws {
        let folder = TestData.temporaryFolder()
        let file = try Self.sample()
        let hash = try file.write(to: folder + "/m.flock")
        let (read, readHash) = try ModelFile.read(from: folder + "/m.flock")
        #expect(read == file)
        #expect(readHash == hash)
        #expect(file.encoded().hash == hash)
        let model = try read.makeModel()
        #expect(model.parameterVector() == file.parameters)
    }

    @Test(arguments: [0, 9, 40, -40, -1])
    func anyFlippedByteIsDetected(position: Int) throws {
        let (bytes, _) = try Self.sample().encoded()
        var damaged = bytes
        let i = position >= 0 ? position : bytes.count + position
        damaged[i] ^= 0x01
        #expect(throws: CoreError.self) { try ModelFile.decode(bytes: damaged, source: "test") }
    }

    @Test func truncatedAndForeignFilesAreRefused() throws {
        let (bytes, _) = try Self.sample().encoded()
        #expect(throws: CoreError.self) { try ModelFile.decode(bytes: Array(bytes.dropLast(10)), source: "t") }
        #expect(throws: CoreError.self) { try ModelFile.decode(bytes: Array("hello".utf8), source: "t") }
        do {
            _ = try ModelFile.read(from: "/nonexistent/model.flock")
            Issue.record("reading a missing file must throw")
        } catch {
            #expect(error.code == .fileNotFound)
        }
    }

    @Test func writeReplacesAtomically() throws {
        let folder = TestData.temporaryFolder()
        let path = folder + "/m.flock"
        var file = try Self.sample()
        try file.write(to: path)
        file.metadata["round"] = "2"
        try file.write(to: path)
        #expect(try ModelFile.read(from: path).file.metadata["round"] == "2")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.contains("tmp") }
        #expect(leftovers.isEmpty)
    }
}

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

    /// Specs no build can allocate, each written into a file with a valid hash.
    static let craftedSpecs: [(String, ModelSpec)] = [
        ("400 GB dense layer", ModelSpec(inputShape: [3], classCount: 10, layers: [.dense(units: 10_000_000_000), .relu, .dense(units: 10)])),
        ("negative input", ModelSpec(inputShape: [-4], classCount: 2, layers: [.dense(units: 2)])),
        ("input overflowing Int", ModelSpec(inputShape: [Int.max, Int.max, 2], classCount: 2, layers: [.dense(units: 2)])),
        ("input of 2^32 values", ModelSpec(inputShape: [1, 65_536, 65_536], classCount: 2, layers: [.flatten, .dense(units: 2)])),
        ("negative units", ModelSpec(inputShape: [4], classCount: 2, layers: [.dense(units: -3), .dense(units: 2)])),
        ("padding overflowing Int", ModelSpec(inputShape: [1, 8, 8], classCount: 2, layers: [.conv2d(filters: 1, kernel: 3, stride: 1, padding: Int.max / 2), .flatten, .dense(units: 2)])),
        ("2^40 filters", ModelSpec(inputShape: [1, 8, 8], classCount: 2, layers: [.conv2d(filters: 1 << 40, kernel: 3, stride: 1, padding: 1), .flatten, .dense(units: 2)])),
        ("huge kernel and padding", ModelSpec(inputShape: [3, 8, 8], classCount: 2, layers: [.conv2d(filters: 2, kernel: 1 << 20, stride: 1, padding: 1 << 20), .flatten, .dense(units: 2)])),
        ("negative pool stride", ModelSpec(inputShape: [1, 8, 8], classCount: 2, layers: [.maxPool2d(size: 2, stride: Int.min), .flatten, .dense(units: 2)])),
        ("negative classes", ModelSpec(inputShape: [4], classCount: -1, layers: [.dense(units: 2)])),
        ("Int.max classes", ModelSpec(inputShape: [4], classCount: Int.max, layers: [.dense(units: 2)])),
        ("100,000 layers", ModelSpec(inputShape: [4], classCount: 2, layers: Array(repeating: .relu, count: 100_000) + [.dense(units: 2)])),
        ("1,000 wide layers", ModelSpec(inputShape: [1 << 20], classCount: 2, layers: Array(repeating: .relu, count: 1_000) + [.dense(units: 2)])),
    ]

    @Test(arguments: craftedSpecs)
    func craftedSpecsWithAValidHashAreRefusedBeforeAnythingIsAllocated(_ name: String, _ spec: ModelSpec) throws {
        let bytes = ModelFile(spec: spec, scaling: .none, parameters: [0, 0, 0]).encoded().bytes
        do {
            _ = try ModelFile.decode(bytes: bytes, source: "crafted.flock")
            Issue.record("\(name): a spec no build can allocate was accepted")
        } catch {
            #expect(error.code == .corruptFile, "\(name): \(error)")
            #expect(error.message.hasPrefix("crafted.flock: the model's spec is not one this build can load"), "\(name): \(error)")
        }
    }

    @Test func aFileWhoseParametersDoNotFitItsSpecIsRefused() throws {
        var file = try Self.sample()
        file.parameters.removeLast()
        do {
            _ = try ModelFile.decode(bytes: file.encoded().bytes, source: "short.flock")
            Issue.record("a file with too few parameters was accepted")
        } catch {
            #expect(error.code == .corruptFile)
            #expect(error.message.contains("but the file holds \(file.parameters.count)"), "\(error)")
        }
    }

    @Test func aSkeletonWithoutWeightsIsReadAndItsModelNeedsThem() throws {
        var skeleton = try Self.sample()
        let count = try skeleton.makeModel().parameterCount
        skeleton.parameters = []
        let read = try ModelFile.decode(bytes: skeleton.encoded().bytes, source: "skeleton.flock").file
        #expect(read.parameters.isEmpty)
        #expect(throws: CoreError.self) { try read.makeModel() }
        #expect(count > 0)
    }

    @Test(arguments: [
        FeatureScaling.standardize(mean: [0, 0], deviation: [1, 1]),
        .standardize(mean: [0, 0, 0, 0, 0], deviation: [1, 1, 0, 1, 1]),
        .max(-2),
    ])
    func aScalingThatDoesNotFitTheInputIsRefused(_ scaling: FeatureScaling) throws {
        var file = try Self.sample()
        file.scaling = scaling
        #expect(throws: CoreError.self) { try ModelFile.decode(bytes: file.encoded().bytes, source: "scaled.flock") }
    }

    @Test func presetsTooLargeToBuildAreRefusedWithAClearError() throws {
        do {
            _ = try Model(spec: ModelSpec.preset("mlp:400000", inputFeatures: 784, classCount: 10), seed: 1)
            Issue.record("a model of 314 million parameters was built")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains("more than \(ModelSpec.maximumParameters) parameters"), "\(error)")
        }
    }
}

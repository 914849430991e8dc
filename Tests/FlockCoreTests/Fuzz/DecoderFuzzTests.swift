import FlockCore
import FlockCrypto
import FlockTestSupport
import Foundation
import Testing

/// Fuzz targets for FlockCore's decoders: model files, CSV data and TOML configs. Each runs
/// ``Mutator/iterations`` seeded mutations of a valid input and checks that every one is either accepted or
/// refused with a ``CoreError`` (the decoders throw nothing else), and that nothing crashes or hangs.
/// `FLOCK_FUZZ_ITERATIONS=100000 swift test --filter DecoderFuzzTests` runs longer by hand.
@Suite struct DecoderFuzzTests {
    /// A small valid model file with a standardize scaling: every number in its header is a target.
    static func validModel() throws -> [UInt8] {
        let model = try Model(spec: ModelSpec.preset("mlp:6,4", inputFeatures: 5, classCount: 3), seed: 7)
        let scaling = FeatureScaling.standardize(mean: [0, 1, 2, 3, 4], deviation: [1, 2, 3, 4, 5])
        return ModelFile(model: model, scaling: scaling, metadata: ["round": "3"]).encoded().bytes
    }

    @Test func mutatedModelFilesAreLoadedOrRefusedWithATypedError() throws {
        let valid = try Self.validModel()
        let body = Array(valid.dropLast(32))
        let archive = try Archive.decode(valid, magic: ModelFile.magic, kind: "model file", path: "valid").archive
        var mutator = Mutator(seed: 0x5EED_0001)
        var pastTheHash = 0
        var accepted = 0
        for iteration in 0..<Mutator.iterations {
            let input: [UInt8]
            switch iteration % 3 {
            case 0:
                // Anything: mostly refused by the hash check or as too short.
                input = mutator.mutate(valid)
            case 1:
                // A damaged structure under a valid hash: lengths, counts, section sizes.
                let mutated = mutator.mutate(body)
                input = mutated + SHA256.hash(mutated).bytes
            default:
                // A well-formed archive whose JSON header (the spec, the scaling) is damaged.
                input = Archive(header: Data(mutator.mutate(Array(archive.header))), sections: archive.sections)
                    .encode(magic: ModelFile.magic).bytes
            }
            do {
                let (file, _) = try ModelFile.decode(bytes: input, source: "fuzz-\(iteration)")
                let model = try file.makeModel()
                #expect(model.parameterCount == file.parameters.count)
                accepted += 1
                pastTheHash += 1
            } catch {
                #expect(error.message.hasPrefix("fuzz-\(iteration)") || error.message.hasPrefix("model file:"), "\(error)")
                if !error.message.contains("content hash mismatch") { pastTheHash += 1 }
            }
        }
        // The valid-hash two thirds reach the parser, and some mutations (metadata, values) still load.
        #expect(pastTheHash >= Mutator.iterations / 2)
        #expect(accepted > 0)
    }

    @Test func mutatedCSVFilesAreLoadedOrRefusedWithATypedError() throws {
        var rng = SeededGenerator(seed: 11)
        var text = ""
        for row in 0..<12 {
            text += "\(row % 3)"
            for _ in 0..<4 { text += String(format: ",%.3f", rng.nextNormal()) }
            text += row == 5 ? "\r\n" : "\n"
        }
        text += "2,1e-3,+4,.5,-7\n"
        let valid = Array(text.utf8)
        let path = TestData.temporaryFolder() + "/fuzz.csv"
        var mutator = Mutator(seed: 0x5EED_0002)
        var accepted = 0
        for iteration in 0..<Mutator.iterations {
            let input = mutator.mutate(valid)
            try FileIO.writeAtomically(input, to: path)
            do {
                let data = try Dataset.loadCSV(path: path)
                #expect(data.features.count == data.count * data.featureCount)
                let labelled = data.labels.count == data.count && data.labels.allSatisfy { $0 >= 0 }
                #expect(labelled)
                let finite = data.features.allSatisfy { $0.isFinite }
                #expect(finite)
                accepted += 1
            } catch {
                #expect(error.code == .invalidData, "iteration \(iteration): \(error)")
                #expect(error.message.hasPrefix(path + ":"), "iteration \(iteration): \(error)")
            }
        }
        #expect(accepted > 0 && accepted < Mutator.iterations)
    }

    @Test func mutatedConfigFilesAreReadOrRefusedWithATypedError() throws {
        let valid = TestData.bytes(TestData.root + "/server/flock-server.toml")
        try #require(!valid.isEmpty, "server/flock-server.toml is missing")
        var mutator = Mutator(seed: 0x5EED_0003)
        var accepted = 0
        for iteration in 0..<Mutator.iterations {
            let input = mutator.mutate(valid)
            do {
                let config = try ConfigFile(text: String(decoding: input, as: UTF8.self), source: "fuzz.toml")
                // Every typed read either gives a value or a typed error naming the file.
                for key in config.entries.keys {
                    var refusals = [CoreError]()
                    do { _ = try config.string(key) } catch { refusals.append(error) }
                    do { _ = try config.integer(key) } catch { refusals.append(error) }
                    do { _ = try config.number(key) } catch { refusals.append(error) }
                    do { _ = try config.boolean(key) } catch { refusals.append(error) }
                    // A value has one type: at most integer and number both read it.
                    #expect(refusals.count >= 2 && refusals.allSatisfy { $0.message.hasPrefix("fuzz.toml:") }, "\(refusals)")
                }
                _ = config.unusedKeys(known: [])
                accepted += 1
            } catch {
                #expect(error.code == .invalidData, "iteration \(iteration): \(error)")
                #expect(error.message.hasPrefix("fuzz.toml:"), "iteration \(iteration): \(error)")
            }
        }
        #expect(accepted > 0 && accepted < Mutator.iterations)
    }
}

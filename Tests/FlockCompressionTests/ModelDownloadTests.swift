import FlockCompression
import FlockCore
import Testing

/// `--download-codec`: a real 2nn model file through each download codec, rebuilt bit for bit into the
/// served model the plan's hash names; every malformed download refused.
@Suite struct ModelDownloadTests {
    private func modelFile() throws -> ModelFile {
        let spec = try ModelSpec.preset("2nn", inputFeatures: 784, classCount: 10)
        let model = try Model(spec: spec, seed: 3)
        return ModelFile(model: model, scaling: .max(255), metadata: ["model_version": "7"])
    }

    @Test func f32SendsTheModelFileAsItIs() throws {
        let file = try modelFile()
        let prepared = try ModelDownload.f32.prepare(file)
        #expect(prepared.payload == file.encoded().bytes && prepared.served == file)
        #expect(prepared.servedHash == file.encoded().hash.hex)
        #expect(try ModelDownload.f32.decode(prepared.payload, source: "test") == file)
    }

    @Test(arguments: ["q16", "q8", "rot+q8", "q4", "q8+deflate", "f32+deflate"])
    func eachCodecRebuildsTheServedModelBitForBit(identifier: String) throws {
        let file = try modelFile()
        let codec = try ModelDownload(parsing: identifier)
        let prepared = try codec.prepare(file)
        let rebuilt = try codec.decode(prepared.payload, source: "test")
        #expect(rebuilt == prepared.served)
        #expect(rebuilt.encoded().hash.hex == prepared.servedHash)
        #expect(rebuilt.spec == file.spec && rebuilt.metadata == file.metadata)
        // Bits per weight, plus the header, a range per block of 1,024 and the file skeleton.
        let bits: Double = identifier.hasPrefix("f32") ? 32 : identifier.contains("16") ? 16 : identifier.contains("8") ? 8 : 4
        let expected = Double(file.parameters.count) * bits / 8
        #expect(Double(prepared.payload.count) < expected * 1.02 + 4_000, "\(prepared.payload.count) bytes, \(expected) expected")
        // Every weight within one quantization step of its block's range (the largest |w| of the block);
        // after a rotation, the root-mean-square error within one step (the rotation keeps lengths).
        if bits < 32 {
            let step = 2 * (file.parameters.map(abs).max() ?? 0) / Float((1 << Int(bits)) - 1)
            let errors = zip(file.parameters, rebuilt.parameters).map { abs($0 - $1) }
            let worst = identifier.hasPrefix("rot+")
                ? (errors.reduce(0) { $0 + $1 * $1 } / Float(errors.count)).squareRoot() : errors.max() ?? 0
            #expect(worst <= step * 1.001 && worst > 0, "\(identifier): \(worst) against a step of \(step)")
        } else {
            #expect(rebuilt.parameters == file.parameters)
        }
    }

    @Test func truncatedPaddedAndTamperedDownloadsAreRefused() throws {
        let file = try modelFile()
        let codec = try ModelDownload(parsing: "q8")
        let good = try codec.prepare(file).payload
        #expect(throws: CodecError.self) { try codec.decode(Array(good.prefix(7)), source: "test") }
        #expect(throws: CodecError.self) { try codec.decode(Array(good.dropLast()), source: "test") }
        #expect(throws: CodecError.self) { try codec.decode(good + [0], source: "test") }
        var longHead = good
        longHead[3] = 0x7F  // the skeleton runs past the end
        #expect(throws: CodecError.self) { try codec.decode(longHead, source: "test") }
        var tamperedHead = good
        tamperedHead[40] ^= 1  // the skeleton's own hash trailer no longer matches
        #expect(throws: CodecError.self) { try codec.decode(tamperedHead, source: "test") }
        let head = Int(good[0]) | Int(good[1]) << 8 | Int(good[2]) << 16 | Int(good[3]) << 24
        var otherCount = good
        otherCount[4 + head] ^= 1  // one parameter more or fewer than the weights' payload holds
        #expect(throws: CodecError.self) { try codec.decode(otherCount, source: "test") }
        var zeroCount = good
        zeroCount.replaceSubrange((4 + head)..<(8 + head), with: [0, 0, 0, 0])
        #expect(throws: CodecError.self) { try codec.decode(zeroCount, source: "test") }
        // The right bytes under another codec's name.
        #expect(throws: CodecError.self) { try ModelDownload(parsing: "q16").decode(good, source: "test") }
        #expect(throws: CodecError.self) { try ModelDownload.f32.decode(good, source: "test") }
    }

    @Test func onlyCodecsThatCarryAWholeModelAreAccepted() throws {
        for bad in ["topk:0.01", "fixed32", "q2", "q1", "rot+q2", "sketch:5x100", "q8+deflate+deflate", "zip"] {
            #expect(throws: CodecError.self, "\(bad)") { try ModelDownload(parsing: bad) }
        }
        #expect(try ModelDownload(parsing: "rot+q4+deflate").identifier == "rot+q4+deflate")
        #expect(try ModelDownload(parsing: "f32") == .f32)
    }
}

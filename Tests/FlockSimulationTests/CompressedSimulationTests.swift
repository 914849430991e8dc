import FlockCompression
import FlockCore
import FlockServer
import FlockSimulation
import FlockTestSupport
import Foundation
import Testing

/// `simulate --codec` on the real mnist5k data: compressed updates, with and without secure aggregation,
/// learn like uncompressed ones and send the bytes their wire formats state.
@Suite struct CompressedSimulationTests {
    static func options(rounds: Int, secure: SecureAggregationOptions?, codec: CodecSpec = .f32) -> Simulation.Options {
        var options = SecureSimulationTests.options(rounds: rounds, secure: secure)
        options.codec = codec
        return options
    }

    @Test func quantizedUpdatesUnderSecureAggregationLearnLikeFixedPointAndSendTheirStatedBytes() throws {
        let fixed = try Simulation(options: Self.options(rounds: 5, secure: SecureAggregationOptions())).run()
        for codec in [CodecSpec.quantized(bits: 2, rotated: false), .quantized(bits: 1, rotated: true)] {
            var reports = [Simulation.RoundReport]()
            let summary = try Simulation(options: Self.options(rounds: 5, secure: SecureAggregationOptions(codec: codec))).run { reports.append($0) }
            #expect(summary.accuracy > fixed.accuracy - 0.02, "\(codec): \(summary.accuracy) against fixed32's \(fixed.accuracy)")
            // 10 summands: base 10(2^b - 1) + 1, so q2 packs 6 values per word and q1 9; the words of the
            // masked vector dominate the upload.
            guard case .quantized(let bits, let rotated) = codec else { continue }
            let quantizer = try StochasticQuantizer(bits: bits, rotated: rotated, length: 199_210, seed: 0)
            let words = try MixedRadixPacking(radix: 10 * UInt64(quantizer.topDigit) + 1).wordCount(digits: quantizer.quantizedLength)
            for report in reports {
                let perEdge = report.uploadBytes / report.participants
                #expect(perEdge >= 4 * words && perEdge < 4 * words + 8_000, "\(codec): \(perEdge) bytes per edge, \(words) words")
            }
        }
    }

    @Test func quantizedPayloadsWithoutSecureAggregationLearnLikeFloatsAtAboutAQuarterOfTheBytes() throws {
        let plain = try Simulation(options: Self.options(rounds: 5, secure: nil)).run()
        var reports = [Simulation.RoundReport]()
        let q8 = try Simulation(options: Self.options(rounds: 5, secure: nil, codec: .quantized(bits: 8, rotated: false))).run { reports.append($0) }
        #expect(abs(q8.accuracy - plain.accuracy) <= 0.01, "q8 \(q8.accuracy), f32 \(plain.accuracy)")
        let payload = try StochasticQuantizer(bits: 8, rotated: false, length: 199_210, seed: 0).payloadByteCount
        #expect(reports.allSatisfy { $0.uploadBytes == $0.participants * payload })
        // One byte per value, plus a range per block of 1,024 and the 8-byte header: 3.98x fewer than f32.
        #expect(Double(199_210 * 4) / Double(payload) > 3.95)
    }

    @Test func theLosslessStageLearnsExactlyLikeItsCodecOnFewerBytes() throws {
        var q4Reports = [Simulation.RoundReport](), stagedReports = [Simulation.RoundReport]()
        let q4 = try Simulation(options: Self.options(rounds: 3, secure: nil, codec: .quantized(bits: 4, rotated: false))).run { q4Reports.append($0) }
        let staged = try Simulation(options: Self.options(rounds: 3, secure: nil, codec: .deflated(.quantized(bits: 4, rotated: false)))).run {
            stagedReports.append($0)
        }
        // Lossless: the same decoded updates, so the same model to the last bit.
        #expect(staged.accuracy == q4.accuracy && staged.loss == q4.loss)
        for (plain, deflated) in zip(q4Reports, stagedReports) {
            // mnist5k's blank pixels and the skew of the 4-bit digits: at least a quarter fewer bytes.
            #expect(Double(deflated.uploadBytes) < 0.75 * Double(plain.uploadBytes), "\(deflated.uploadBytes) against \(plain.uploadBytes)")
        }
    }

    @Test func edgesTrainingFromAnEightBitDownloadLearnLikeFloatsOnAQuarterOfTheDownload() throws {
        var plainReports = [Simulation.RoundReport](), q8Reports = [Simulation.RoundReport]()
        let plain = try Simulation(options: Self.options(rounds: 5, secure: nil)).run { plainReports.append($0) }
        var options = Self.options(rounds: 5, secure: nil)
        options.downloadCodec = try ModelDownload(parsing: "q8")
        let q8 = try Simulation(options: options).run { q8Reports.append($0) }
        #expect(abs(q8.accuracy - plain.accuracy) <= 0.01, "q8 download \(q8.accuracy), f32 \(plain.accuracy)")
        // The edges trained from another model than the global, so the runs differ.
        #expect(q8.loss != plain.loss)
        for (f32, quantized) in zip(plainReports, q8Reports) {
            let ratio = Double(f32.downloadBytes) / Double(quantized.downloadBytes)
            #expect(ratio > 3.9 && ratio < 4.0, "\(ratio)")
        }
    }

    @Test func topKWithErrorFeedbackLearnsAndSendsItsPayloads() throws {
        var reports = [Simulation.RoundReport]()
        let codec = CodecSpec.topK(fraction: 0.03, momentum: 0.5, signs: true)
        let summary = try Simulation(options: Self.options(rounds: 5, secure: nil, codec: codec)).run { reports.append($0) }
        #expect(summary.accuracy > 0.75, "\(summary.accuracy)")
        // 5,977 kept values: 8 + 4 + 748 bytes of header and signs, then one or two bytes per index gap.
        for report in reports {
            let perEdge = report.uploadBytes / report.participants
            #expect(perEdge > 760 + 5_977 && perEdge < 760 + 2 * 5_977, "\(perEdge)")
        }
    }

    @Test func sketchedUpdatesUnderSecureAggregationLearnAtAThirtiethOfTheBytes() throws {
        var reports = [Simulation.RoundReport]()
        let codec = CodecSpec.sketch(rows: 5, columns: 7_000, cellBits: 2, k: 1_000)
        let summary = try Simulation(options: Self.options(rounds: 6, secure: SecureAggregationOptions(codec: codec))).run { reports.append($0) }
        #expect(summary.accuracy > 0.6, "\(summary.accuracy)")
        for report in reports {
            let ratio = Double(199_210 * 4) / Double(report.uploadBytes / report.participants)
            #expect(ratio > 30, "\(ratio)x fewer bytes than f32")
        }
    }

    @Test func sketchedUpdatesWithoutSecureAggregationSendTheirCellsInTwoBitsAndLearnAsWellAsUnderIt() throws {
        let codec = CodecSpec.sketch(rows: 5, columns: 7_000, cellBits: 2, k: 1_000)
        var reports = [Simulation.RoundReport]()
        let plain = try Simulation(options: Self.options(rounds: 6, secure: nil, codec: codec)).run { reports.append($0) }
        let secure = try Simulation(options: Self.options(rounds: 6, secure: SecureAggregationOptions(codec: codec))).run()
        // Each edge's own ranges clip nothing, so without secure aggregation it learns at least as well.
        #expect(plain.accuracy > 0.6 && plain.accuracy > secure.accuracy - 0.02, "without \(plain.accuracy), under \(secure.accuracy)")
        // 35,000 cells at 2 bits, 16 to a word (no ring headroom), a range per block of 1,024 and the
        // 8-byte header: 8,900 bytes, 89.5x fewer than f32.
        let payload = try StochasticQuantizer(bits: 2, rotated: false, length: 35_000, seed: 0).payloadByteCount
        #expect(payload == 8 + 4 * 35 + 4 * 2_188)
        #expect(reports.allSatisfy { $0.uploadBytes == $0.participants * payload })
    }

    /// A run stopped after round 3 and resumed from its checkpoint ends exactly where a straight run ends:
    /// the checkpoint carries each edge's `topk` residual, the secure quantizer's ranges and the sketch's
    /// FetchSGD state.
    @Test(arguments: [
        (CodecSpec.topK(fraction: 0.03, momentum: 0.5, signs: true), false),
        (CodecSpec.quantized(bits: 1, rotated: true), true),
        (CodecSpec.sketch(rows: 5, columns: 7_000, cellBits: 2, k: 1_000), true),
    ])
    func aResumedRunKeepsItsCodecState(codec: CodecSpec, secure: Bool) throws {
        func options(rounds: Int) -> Simulation.Options {
            Self.options(rounds: rounds, secure: secure ? SecureAggregationOptions(codec: codec) : nil, codec: secure ? .f32 : codec)
        }
        let straight = try Simulation(options: options(rounds: 6)).run()
        var first = options(rounds: 3)
        first.stateFolder = TestData.temporaryFolder()
        _ = try Simulation(options: first).run()
        let saved = try #require(try RoundCheckpoint.read(fromFolder: first.stateFolder!))
        #expect(!saved.codecSections.isEmpty, "\(codec): no codec state in the checkpoint")
        var second = options(rounds: 6)
        second.stateFolder = first.stateFolder
        let resumed = try Simulation(options: second).run()
        #expect(resumed.accuracy == straight.accuracy && resumed.loss == straight.loss, "\(codec): \(resumed) against \(straight)")
    }

    @Test func aCodecThatCannotRunUnderSecureAggregationIsRefusedBeforeAnyRound() throws {
        var options = Self.options(rounds: 1, secure: SecureAggregationOptions(codec: .topK(fraction: 0.01)))
        #expect(throws: CoreError.self) { try Simulation(options: options).run() }
        options = Self.options(rounds: 1, secure: SecureAggregationOptions(codec: .deflated(.quantized(bits: 4, rotated: false))))
        #expect(throws: CoreError.self) { try Simulation(options: options).run() }
        let result = try TestData.run(TestData.executable("flock-server"), ["simulate", "--rounds", "1", "--codec", "topk:0.01"])
        #expect(result.status == 64 && result.error.contains("cannot run under secure aggregation"), "\(result.error)")
        let bad = try TestData.run(TestData.executable("flock-server"), ["simulate", "--rounds", "1", "--codec", "q3"])
        #expect(bad.status == 64 && bad.error.contains("1, 2, 4, 8 or 16 bits"), "\(bad.error)")
    }
}

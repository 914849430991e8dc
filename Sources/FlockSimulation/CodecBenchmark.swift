import FlockCompression
import FlockCore
import FlockEdge
import FlockServer
import Foundation

/// `flock-server bench codecs`: for each codec, the rounds issue's mnist5k `simulate` run (2nn, 20 clients,
/// half per round, E = 1, B = 10, lr 0.05), under secure aggregation for the ring codecs and without it for
/// the others, on each partition: upload bytes per edge per round, the ratio to `f32`, final accuracy, and
/// the time to encode one edge's update and to decode (one payload, or the round's unmasked sum).
public struct CodecBenchmark: Sendable {
    /// One codec on one partition.
    public struct Row: Sendable, Codable {
        /// The codec's identifier.
        public var codec: String
        /// Whether the rounds ran under secure aggregation.
        public var secureAggregation: Bool
        /// `iid`, `shards`, …
        public var partition: String
        /// Median upload bytes per edge per round (secure aggregation's keys and shares included).
        public var uploadBytesPerEdge: Int
        /// `f32`'s bytes per edge (4 per parameter) over this codec's.
        public var ratioToF32: Double
        /// Accuracy after the last round.
        public var accuracy: Double
        /// Seconds to encode one edge's update.
        public var encodeSeconds: Double
        /// Seconds to decode: one payload without secure aggregation, the round's sum with it.
        public var decodeSeconds: Double

        enum CodingKeys: String, CodingKey {
            case codec, partition, accuracy
            case secureAggregation = "secure_aggregation"
            case uploadBytesPerEdge = "upload_bytes_per_edge"
            case ratioToF32 = "ratio_to_f32"
            case encodeSeconds = "encode_seconds"
            case decodeSeconds = "decode_seconds"
        }
    }

    /// Runs `codec` on `partition` for `rounds` rounds; `secure` picks secure aggregation.
    /// - Throws: ``CoreError`` for missing data or a codec that cannot run so.
    public static func run(
        codec: CodecSpec, secure: Bool, partition: PartitionScheme, rounds: Int, trainPath: String, evalPath: String, threads: Int
    ) throws(CoreError) -> Row {
        var options = Simulation.Options(
            trainPath: trainPath, evalPath: evalPath, clients: 20, partition: partition, fraction: 0.5, rounds: rounds, model: "2nn",
            plan: LocalTrainingPlan(epochs: 1, batchSize: 10, learningRate: 0.05), seed: 0, threads: threads,
            secureAggregation: secure ? SecureAggregationOptions(codec: codec) : nil)
        if !secure { options.codec = codec }
        var perEdge = [Int]()
        let summary = try Simulation(options: options).run { perEdge.append($0.uploadBytes / max(1, $0.participants)) }
        let parameters = summary.parameters
        let (encode, decode) = try timing(codec, secure: secure, length: parameters, summands: options.selectedPerRound)
        let bytes = perEdge.sorted()[perEdge.count / 2]
        return Row(
            codec: codec.identifier, secureAggregation: secure, partition: partition.description, uploadBytesPerEdge: bytes,
            ratioToF32: Double(parameters * 4) / Double(bytes), accuracy: summary.accuracy, encodeSeconds: encode, decodeSeconds: decode)
    }

    /// Median seconds to encode and to decode an update of `length` Gaussian values of standard deviation
    /// 0.01 (about a 2nn round's update), over 5 runs.
    static func timing(_ codec: CodecSpec, secure: Bool, length: Int, summands: Int) throws(CoreError) -> (encode: Double, decode: Double) {
        var rng = SeededGenerator(seed: 7)
        let delta = (0..<length).map { _ in Float(rng.nextNormal() * 0.01) }
        var encodes = [Double](), decodes = [Double]()
        do {
            for run in 0..<5 {
                if secure {
                    let options = SecureAggregationOptions(codec: codec)
                    let ring = try options.ringCodec(length: length, participants: summands, maximumWeight: 250, ranges: nil, seed: UInt64(run))
                    var start = Date()
                    let words = try ring.encode(delta, examples: 250, seed: UInt64(run))
                    encodes.append(Date().timeIntervalSince(start))
                    start = Date()
                    _ = try ring.decodeMean(sum: words, summands: 1)
                    decodes.append(Date().timeIntervalSince(start))
                } else {
                    let plain = try PlainCodec(codec, length: length, seed: UInt64(run))
                    var start = Date()
                    let payload = try plain.encode(delta, seed: UInt64(run))
                    encodes.append(Date().timeIntervalSince(start))
                    start = Date()
                    _ = try plain.decode(payload)
                    decodes.append(Date().timeIntervalSince(start))
                }
            }
        } catch let error as CodecError {
            throw CoreError(.invalidArgument, error.message)
        } catch let error as CoreError {
            throw error
        } catch {
            throw CoreError(.invalidArgument, "\(error)")
        }
        return (encodes.sorted()[2], decodes.sorted()[2])
    }

    /// The table of `rows`.
    public static func render(_ rows: [Row]) -> String {
        TextTable(
            header: ["codec", "secagg", "partition", "up KB/edge/round", "x fewer than f32", "accuracy", "encode ms", "decode ms"],
            rows: rows.map { r in
                [
                    r.codec, r.secureAggregation ? "on" : "off", r.partition, String(format: "%.1f", Double(r.uploadBytesPerEdge) / 1000),
                    String(format: "%.1f", r.ratioToF32), String(format: "%.4f", r.accuracy), String(format: "%.2f", r.encodeSeconds * 1000),
                    String(format: "%.2f", r.decodeSeconds * 1000),
                ]
            }
        ).render()
    }
}

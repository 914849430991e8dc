import FlockCore
import Foundation

/// The outcome of a ``TrainingBenchmark`` run: Flock's rows beside the PyTorch peer's, and sgemm GFLOP/s.
///
/// The JSON form (`flock-server bench training --json`) is one object:
///
///     {"rows": [{"threads": 1, "model": "2nn", "batch": 10, "samples_per_second": 12000.5,
///                "test_accuracy": 0.906, "epoch_seconds": [0.5, 0.33, 0.34, 0.33, 0.34],
///                "peer_samples_per_second": 10317.8, "peer_test_accuracy": 0.906, "ratio": 1.163}, ...],
///      "sgemm_gflops": {"1": 48.2, "2": 90.1}}
///
/// `peer_samples_per_second`, `peer_test_accuracy` and `ratio` (Flock's samples/s over the peer's) are null when
/// the peer did not measure that configuration; `sgemm_gflops` is keyed by thread count.
public struct TrainingBenchmarkReport: Sendable, Encodable {
    /// One configuration: Flock's result and, when it measured the same one, the peer's.
    public struct Row: Sendable, Encodable, Equatable {
        /// Flock's measurement.
        public var result: BenchmarkResult
        /// The peer's row for the same threads, model and batch size.
        public var peer: PeerResults.Row?

        /// Creates a row.
        public init(result: BenchmarkResult, peer: PeerResults.Row?) {
            self.result = result
            self.peer = peer
        }

        /// Flock's samples per second divided by the peer's; `nil` without a peer row.
        public var ratio: Double? {
            guard let peer, peer.samplesPerSecond > 0 else { return nil }
            return result.samplesPerSecond / peer.samplesPerSecond
        }

        private enum CodingKeys: String, CodingKey {
            case peerSamplesPerSecond = "peer_samples_per_second"
            case peerTestAccuracy = "peer_test_accuracy"
            case ratio
        }

        /// Encodes the result's keys and the three peer keys (null when there is no peer row).
        public func encode(to encoder: any Encoder) throws {
            try result.encode(to: encoder)
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(peer?.samplesPerSecond, forKey: .peerSamplesPerSecond)
            try container.encode(peer?.testAccuracy, forKey: .peerTestAccuracy)
            try container.encode(ratio, forKey: .ratio)
        }
    }

    /// One row per configuration, in measurement order.
    public var rows: [Row]
    /// sgemm GFLOP/s by thread count (empty when not measured).
    public var sgemmGflops: [Int: Double]
    /// The sgemm matrix side, when measured.
    public var sgemmSize: Int?
    /// The peer's PyTorch version, when a peer file was given and records it.
    public var peerTorchVersion: String?

    /// Pairs Flock's results with the peer's rows.
    public init(results: [BenchmarkResult], peer: PeerResults?, sgemmGflops: [Int: Double], sgemmSize: Int?) {
        rows = results.map { result in
            Row(result: result, peer: peer?.row(threads: result.threads, model: result.model, batch: result.batch))
        }
        self.sgemmGflops = sgemmGflops
        self.sgemmSize = sgemmSize
        peerTorchVersion = peer?.torchVersion
    }

    private enum CodingKeys: String, CodingKey {
        case rows
        case sgemmGflops = "sgemm_gflops"
    }

    /// Encodes `rows` and `sgemm_gflops` (an object keyed by thread count).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(rows, forKey: .rows)
        let byThreads = Dictionary(uniqueKeysWithValues: sgemmGflops.map { (String($0.key), $0.value) })
        try container.encode(byThreads, forKey: .sgemmGflops)
    }

    /// The table of `flock-server bench training`: one line per configuration, "-" where the peer has no number,
    /// then one sgemm line per thread count.
    public func render() -> String {
        let header = [
            "threads", "model", "batch", "Flock samples/s", "PyTorch samples/s", "ratio", "Flock acc", "PyTorch acc",
        ]
        let cells = rows.map { row in
            [
                "\(row.result.threads)", row.result.model, "\(row.result.batch)",
                Self.fixed(row.result.samplesPerSecond, 1), row.peer.map { Self.fixed($0.samplesPerSecond, 1) } ?? "-",
                row.ratio.map { Self.fixed($0, 2) } ?? "-", Self.fixed(row.result.testAccuracy, 4),
                row.peer.map { Self.fixed($0.testAccuracy, 4) } ?? "-",
            ]
        }
        var lines = [TextTable(header: header, rows: cells).render()]
        if let version = peerTorchVersion { lines.append("PyTorch: torch \(version)") }
        if let size = sgemmSize, !sgemmGflops.isEmpty {
            lines.append("")
            for (threads, gflops) in sgemmGflops.sorted(by: { $0.key < $1.key }) {
                let noun = threads == 1 ? "thread" : "threads"
                lines.append(
                    "sgemm \(size)x\(size)x\(size) (dense-layer forward, median of 5), \(threads) \(noun): "
                        + "\(Self.fixed(gflops, 1)) GFLOP/s"
                )
            }
        }
        return lines.joined(separator: "\n")
    }

    private static func fixed(_ value: Double, _ decimals: Int) -> String {
        String(format: "%.\(decimals)f", value)
    }
}

import FlockCore
import FlockCrypto
import FlockSecAgg
import FlockServer
import Foundation

/// `flock-server bench secagg`: the cost of one round of secure aggregation, per phase, for the client and
/// the server, with every edge running the real protocol (real keys, shares, masks) on one core each.
///
/// Drop-outs happen where they cost the server most, as in Bonawitz et al. 2017 (§7): after sharing keys
/// and before the masked input, so the server must rebuild each dropped edge's pairwise masks. Every run
/// checks that the unmasked sum equals the survivors' plain sum exactly.
public struct SecAggBenchmark: Sendable {
    /// One configuration's measurements.
    public struct Row: Sendable, Codable {
        /// Edges.
        public var n: Int
        /// Words per input.
        public var length: Int
        /// Share of edges that dropped.
        public var dropFraction: Double
        /// `complete` or `secagg+`.
        public var graph: String
        /// Neighbours per edge.
        public var neighbours: Int
        /// Threshold.
        public var threshold: Int
        /// Median client seconds per phase (advertise, share keys, masked input, unmask).
        public var clientSeconds: [Double]
        /// Server seconds per phase, on one core.
        public var serverSeconds: [Double]
        /// Median bytes one edge sends in the round.
        public var bytesPerEdge: Int
        /// Mask words a client expanded per second in the masked-input phase, as bytes per second. The phase
        /// also agrees a key with each neighbour (X25519), which dominates for short vectors.
        public var maskBytesPerSecond: Double
        /// The mask expansion alone: bytes per second of one edge's k + 1 streams added into a vector of the
        /// round's length (``MaskStream/add(_:into:threads:backend:)`` on one core, the client's own call),
        /// the best of 3.
        public var expansionBytesPerSecond: Double

        enum CodingKeys: String, CodingKey {
            case n, length, graph, neighbours, threshold
            case dropFraction = "drop_fraction"
            case clientSeconds = "client_seconds"
            case serverSeconds = "server_seconds"
            case bytesPerEdge = "bytes_per_edge"
            case maskBytesPerSecond = "mask_bytes_per_second"
            case expansionBytesPerSecond = "expansion_bytes_per_second"
        }
    }

    /// Runs one configuration.
    /// - Parameters:
    ///   - threshold: t, or nil for the default (two thirds of a neighbourhood, lowered to the fewest survivors
    ///     of any neighbourhood when that is less).
    ///   - workers: clients run at once (each on one core).
    /// - Throws: ``CoreError`` with code ``CoreError/Code/invalidArgument`` when fewer than t survived somewhere
    ///   (the round aborted), ``CoreError/Code/invalidData`` when the protocol refused something or the sum
    ///   is not exact (a bug).
    public static func run(
        n: Int, length: Int, dropFraction: Double, complete: Bool, threshold: Int? = nil, workers: Int, seed: UInt64 = 1
    ) throws(CoreError) -> Row {
        let ids = (0..<n).map { String(format: "edge-%04d", $0) }
        var rng = SeededGenerator(seed: seed)
        let dropped = Set(rng.permutation(n).prefix(Int((dropFraction * Double(n)).rounded())).map { ids[$0] })
        var configuration = SecAggConfiguration.make(round: 1, participants: ids, vectorLength: length, complete: complete, graphSeed: seed, threshold: threshold)
        if threshold == nil {
            // The default t (2/3 of a neighbourhood) aborts the round when some neighbourhood keeps fewer
            // survivors; then t is the fewest survivors of any neighbourhood, as the t column shows.
            let fewest = ids.filter { !dropped.contains($0) }.map { id in
                (configuration.neighbours(of: id) + [id]).filter { !dropped.contains($0) }.count
            }.min() ?? 1
            if fewest < configuration.threshold { configuration.threshold = max(1, fewest) }
        }
        // Every edge's input: words of its own linear congruential stream; their plain sum checks the unmasked one.
        func words(_ i: Int) -> [UInt32] {
            var x = UInt32(truncatingIfNeeded: i &* 2_654_435_761)
            return (0..<length).map { _ in
                x = x &* 1_664_525 &+ 1_013_904_223
                return x
            }
        }
        let driver = InProcessSecureRound(configuration: configuration, workers: workers, serverThreads: 1) { id, phase in phase < 2 || !dropped.contains(id) }
        let outcome = try driver.run { i, _ throws(CoreError) -> [UInt32]? in words(i) }
        guard let result = outcome.result else {
            throw CoreError(.invalidArgument, "secagg bench n=\(n) d=\(length): the round aborted: \(outcome.abortReason ?? "too few survivors")")
        }
        var plain = [UInt32](repeating: 0, count: length)
        for id in result.included {
            let input = words(configuration.participants.firstIndex(of: id)!)
            for w in 0..<length { plain[w] &+= input[w] }
        }
        guard result.sum == plain else { throw CoreError(.invalidData, "the unmasked sum differs from the survivors' plain sum") }

        func median(_ values: [Double]) -> Double {
            let sorted = values.sorted()
            return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
        }
        let survivors = configuration.participants.indices.filter { !dropped.contains(configuration.participants[$0]) }
        let maskSeconds = median(survivors.map { outcome.clientSeconds[2][$0] })
        let streams = Double(configuration.neighbourCount + 1)
        let terms = (0...configuration.neighbourCount).map { i in MaskStream.Term(seed: SecretBytes.random(count: MaskStream.seedBytes), sign: i % 2 == 0 ? 1 : -1) }
        var vector = words(0)
        var fastest = Double.infinity
        for _ in 0..<3 {
            let start = DispatchTime.now().uptimeNanoseconds
            MaskStream.add(terms, into: &vector)
            fastest = min(fastest, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return Row(
            n: n, length: length, dropFraction: dropFraction, graph: complete ? "complete" : "secagg+",
            neighbours: configuration.neighbourCount, threshold: configuration.threshold,
            clientSeconds: [
                median(outcome.clientSeconds[0]), median(outcome.clientSeconds[1]), maskSeconds,
                median(survivors.map { outcome.clientSeconds[3][$0] }),
            ],
            serverSeconds: outcome.serverSeconds, bytesPerEdge: survivors.map { outcome.bytes[$0] }.sorted()[survivors.count / 2],
            maskBytesPerSecond: maskSeconds > 0 ? streams * Double(length) * 4 / maskSeconds : 0,
            expansionBytesPerSecond: streams * Double(length) * 4 / max(fastest, 1e-9))
    }

    /// The table of `rows`, with the raw ChaCha20 keystream rates of this machine (libsodium's, and libcrypto's
    /// when it has ChaCha20) that the expansion rate is divided by in the ratio columns.
    public static func render(_ rows: [Row], chachaBytesPerSecond: Double, libcryptoBytesPerSecond: Double?) -> String {
        func ms(_ s: Double) -> String { String(format: s < 0.01 ? "%.2f" : "%.0f", s * 1000) }
        let table = TextTable(
            header: [
                "n", "d", "drop", "graph", "k", "t", "client ms adv/share/mask/unmask", "server ms adv/share/mask/unmask",
                "KB/edge", "phase GB/s", "expand GB/s", "of libsodium", "of libcrypto",
            ],
            rows: rows.map { r in
                [
                    "\(r.n)", "\(r.length)", String(format: "%.0f%%", r.dropFraction * 100), r.graph, "\(r.neighbours)", "\(r.threshold)",
                    r.clientSeconds.map(ms).joined(separator: " / "), r.serverSeconds.map(ms).joined(separator: " / "),
                    String(format: "%.0f", Double(r.bytesPerEdge) / 1000), String(format: "%.2f", r.maskBytesPerSecond / 1e9),
                    String(format: "%.2f", r.expansionBytesPerSecond / 1e9),
                    String(format: "%.2f", r.expansionBytesPerSecond / chachaBytesPerSecond),
                    libcryptoBytesPerSecond.map { String(format: "%.2f", r.expansionBytesPerSecond / $0) } ?? "-",
                ]
            })
        let libcrypto = libcryptoBytesPerSecond.map { String(format: "%.2f GB/s", $0 / 1e9) } ?? "not available"
        return String(
            format: "ChaCha20 keystream on this machine, per core: libsodium %.2f GB/s, libcrypto %@; masks are expanded by %@\n",
            chachaBytesPerSecond / 1e9, libcrypto, MaskStream.Backend.fastest.rawValue) + table.render()
    }
}

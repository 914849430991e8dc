import FlockCore
import FlockCrypto
import FlockSecAgg
import Foundation
import Synchronization

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
        /// Mask words a client expanded per second in the masked-input phase, as bytes per second.
        public var maskBytesPerSecond: Double

        enum CodingKeys: String, CodingKey {
            case n, length, graph, neighbours, threshold
            case dropFraction = "drop_fraction"
            case clientSeconds = "client_seconds"
            case serverSeconds = "server_seconds"
            case bytesPerEdge = "bytes_per_edge"
            case maskBytesPerSecond = "mask_bytes_per_second"
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
        func fail(_ error: any Error) -> CoreError { CoreError(.invalidData, "secagg bench n=\(n) d=\(length): \(error)") }
        do {
            var server = try SecAggServer(configuration: configuration)
            var clientSeconds = [[Double]](repeating: [Double](repeating: 0, count: n), count: 4)
            var serverSeconds = [0.0, 0, 0, 0]
            var bytes = [Int](repeating: 0, count: n)

            // Phase 1.
            var clients = [SecAggClient]()
            for (i, id) in ids.enumerated() {
                let start = Date()
                var client = try SecAggClient(id: id, configuration: configuration)
                let ad = try client.advertise()
                clientSeconds[0][i] = Date().timeIntervalSince(start)
                bytes[i] += 64
                clients.append(client)
                let s = Date()
                try server.receive(ad)
                serverSeconds[0] += Date().timeIntervalSince(s)
            }
            var s = Date()
            let rosters = try server.closeAdvertising()
            serverSeconds[0] += Date().timeIntervalSince(s)

            // Phase 2, clients in parallel.
            let shared = Parallel.map(n) { i -> Result<(SecAggClient, [EncryptedShare], Double), SecAggError> in
                var client = clients[i]
                return Result { () throws(SecAggError) in
                    let start = Date()
                    let shares = try client.shareKeys(roster: rosters[ids[i]]!)
                    return (client, shares, Date().timeIntervalSince(start))
                }
            }
            for i in 0..<n {
                let (client, shares, seconds) = try shared[i].get()
                clients[i] = client
                clientSeconds[1][i] = seconds
                bytes[i] += shares.reduce(0) { $0 + $1.box.count }
                s = Date()
                try server.receive(shares: shares, from: ids[i])
                serverSeconds[1] += Date().timeIntervalSince(s)
            }
            s = Date()
            let inbox = try server.closeSharing()
            serverSeconds[1] += Date().timeIntervalSince(s)

            // Phase 3: survivors mask in parallel; the server adds each masked vector as it arrives.
            let survivors = (0..<n).filter { !dropped.contains(ids[$0]) }
            struct Shared: Sendable {
                var server: SecAggServer
                var plain: [UInt32]
                var seconds = 0.0
            }
            let guarded = Mutex(Shared(server: server, plain: [UInt32](repeating: 0, count: length)))
            let next = Atomic<Int>(0)
            let masked = Parallel.map(min(workers, max(1, survivors.count))) { _ -> [(Int, Result<(SecAggClient, Double), SecAggError>)] in
                var done = [(Int, Result<(SecAggClient, Double), SecAggError>)]()
                while true {
                    let j = next.add(1, ordering: .relaxed).oldValue
                    guard j < survivors.count else { break }
                    let i = survivors[j]
                    var input = [UInt32](repeating: 0, count: length)
                    var x = UInt32(truncatingIfNeeded: i &* 2_654_435_761)
                    for w in 0..<length {
                        x = x &* 1_664_525 &+ 1_013_904_223
                        input[w] = x
                    }
                    var client = clients[i]
                    done.append((i, Result { () throws(SecAggError) in
                        let start = Date()
                        let vector = try client.maskedInput(input, shares: inbox[ids[i]]!)
                        let seconds = Date().timeIntervalSince(start)
                        try guarded.withLock { (state: inout Shared) throws(SecAggError) in
                            let s = Date()
                            try state.server.receive(vector)
                            state.seconds += Date().timeIntervalSince(s)
                            for w in 0..<length { state.plain[w] &+= input[w] }
                        }
                        return (client, seconds)
                    }))
                }
                return done
            }
            for (i, result) in masked.flatMap({ $0 }) {
                let (client, seconds) = try result.get()
                clients[i] = client
                clientSeconds[2][i] = seconds
                bytes[i] += length * 4
            }
            let (afterMasking, plain, receiveSeconds) = guarded.withLock { ($0.server, $0.plain, $0.seconds) }
            server = afterMasking
            serverSeconds[2] = receiveSeconds
            s = Date()
            let requests = try server.closeMasking()
            serverSeconds[2] += Date().timeIntervalSince(s)

            // Phase 4.
            for i in survivors {
                let start = Date()
                let response = try clients[i].unmask(requests[ids[i]]!)
                clientSeconds[3][i] = Date().timeIntervalSince(start)
                bytes[i] += (1 + MaskStream.seedBytes) * (response.seedShares.count + response.keyShares.count)
                s = Date()
                try server.receive(response)
                serverSeconds[3] += Date().timeIntervalSince(s)
            }
            s = Date()
            let (sum, _) = try server.finish()
            serverSeconds[3] += Date().timeIntervalSince(s)
            guard sum == plain else { throw CoreError(.invalidData, "the unmasked sum differs from the survivors' plain sum") }

            func median(_ values: [Double]) -> Double {
                let sorted = values.sorted()
                return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
            }
            let maskSeconds = median(survivors.map { clientSeconds[2][$0] })
            let streams = Double(configuration.neighbourCount + 1)
            return Row(
                n: n, length: length, dropFraction: dropFraction, graph: complete ? "complete" : "secagg+",
                neighbours: configuration.neighbourCount, threshold: configuration.threshold,
                clientSeconds: [
                    median(clientSeconds[0]), median(clientSeconds[1]), maskSeconds,
                    median(survivors.map { clientSeconds[3][$0] }),
                ],
                serverSeconds: serverSeconds, bytesPerEdge: survivors.map { bytes[$0] }.sorted()[survivors.count / 2],
                maskBytesPerSecond: maskSeconds > 0 ? streams * Double(length) * 4 / maskSeconds : 0)
        } catch let error as CoreError {
            throw error
        } catch let error as SecAggError where error.kind == .tooFewSurvivors {
            throw CoreError(.invalidArgument, error.message)
        } catch {
            throw fail(error)
        }
    }

    /// The table of `rows`, with the ChaCha20 keystream rate of this machine for the ratio column.
    public static func render(_ rows: [Row], chachaBytesPerSecond: Double) -> String {
        func ms(_ s: Double) -> String { String(format: s < 0.01 ? "%.2f" : "%.0f", s * 1000) }
        let table = TextTable(
            header: [
                "n", "d", "drop", "graph", "k", "t", "client ms adv/share/mask/unmask", "server ms adv/share/mask/unmask",
                "KB/edge", "mask GB/s", "of ChaCha20",
            ],
            rows: rows.map { r in
                [
                    "\(r.n)", "\(r.length)", String(format: "%.0f%%", r.dropFraction * 100), r.graph, "\(r.neighbours)", "\(r.threshold)",
                    r.clientSeconds.map(ms).joined(separator: " / "), r.serverSeconds.map(ms).joined(separator: " / "),
                    String(format: "%.0f", Double(r.bytesPerEdge) / 1000), String(format: "%.2f", r.maskBytesPerSecond / 1e9),
                    String(format: "%.2f", r.maskBytesPerSecond / chachaBytesPerSecond),
                ]
            })
        return String(format: "libsodium ChaCha20 keystream on this machine: %.2f GB/s per core\n", chachaBytesPerSecond / 1e9) + table.render()
    }
}

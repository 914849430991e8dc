import FlockCore
import FlockCrypto
import FlockSecAgg
import Foundation
import Synchronization

/// One round of secure aggregation (Bonawitz et al. 2017, with the SecAgg+ neighbourhoods of Bell et al.
/// 2020) with the server and every edge in this process, running the real client and server state
/// machines: the driver that `simulate` and `bench secagg` share. Key work and masking run on `workers`
/// threads; the server takes each message as it comes.
///
/// An edge that is not there at a phase (``stays``) sends nothing from then on; an edge whose neighbourhood
/// fell below the threshold drops out where the protocol says so; a phase the server cannot close ends the
/// round with its reason. Any other refusal is a bug here (every message comes from an honest edge) and is
/// thrown.
struct InProcessSecureRound {
    /// What the round did.
    struct Outcome {
        /// The unmasked sum and the edges in it, or nil when the round aborted.
        var result: (sum: [UInt32], included: [String])?
        /// Why the round aborted.
        var abortReason: String?
        /// Edges the server saw drop, per phase.
        var droppedPerPhase: [Int]
        /// Wall seconds of each phase (advertise, share keys, masked input, unmask).
        var phaseSeconds: [Double]
        /// Seconds each participant's client spent in each phase, by phase then participant (0 when absent).
        var clientSeconds: [[Double]]
        /// Seconds of the server's own calls in each phase.
        var serverSeconds: [Double]
        /// Bytes each participant sent: keys, sealed shares, the masked vector, revealed shares.
        var bytes: [Int]
    }

    /// The round's parameters.
    let configuration: SecAggConfiguration
    /// Threads for key work and masking.
    let workers: Int
    /// Threads the server unmasks on.
    let serverThreads: Int
    /// Whether edge `id` is still there at phase `p` (0 advertise, 1 share keys, 2 masked input, 3 unmask).
    let stays: (_ id: String, _ phase: Int) -> Bool

    /// Runs the round. `input(participant, worker)` is the vector of `configuration.participants[participant]`,
    /// computed on worker thread `worker`; nil drops the edge out before its masked input.
    /// - Throws: what `input` throws, and ``CoreError/Code/invalidData`` when the protocol refuses a message.
    func run(input: (_ participant: Int, _ worker: Int) throws(CoreError) -> [UInt32]?) throws(CoreError) -> Outcome {
        let ids = configuration.participants
        let n = ids.count
        var outcome = Outcome(
            result: nil, abortReason: nil, droppedPerPhase: [0, 0, 0, 0], phaseSeconds: [0, 0, 0, 0],
            clientSeconds: [[Double]](repeating: [Double](repeating: 0, count: n), count: 4), serverSeconds: [0, 0, 0, 0],
            bytes: [Int](repeating: 0, count: n))
        var phaseStart = Date()
        func endPhase(_ phase: Int) {
            outcome.phaseSeconds[phase] = Date().timeIntervalSince(phaseStart)
            phaseStart = Date()
        }
        func timed<T>(_ phase: Int, _ body: () throws(SecAggError) -> T) throws(SecAggError) -> T {
            let start = Date()
            defer { outcome.serverSeconds[phase] += Date().timeIntervalSince(start) }
            return try body()
        }
        var server: SecAggServer
        do { server = try SecAggServer(configuration: configuration) } catch {
            throw CoreError(.invalidArgument, "secure aggregation: \(error.message)")
        }
        server.threads = serverThreads
        func aborted(_ error: SecAggError) -> Outcome {
            outcome.abortReason = error.message
            outcome.droppedPerPhase = server.droppedPerPhase
            return outcome
        }
        do {
            // Phase 1: advertise keys (two X25519 key pairs per edge), on the workers.
            let advertising = (0..<n).filter { stays(ids[$0], 0) }
            let advertised = Parallel.map(advertising.count) { j -> Result<(SecAggClient, KeyAdvertisement, Double), SecAggError> in
                Result { () throws(SecAggError) in
                    let start = Date()
                    var client = try SecAggClient(id: ids[advertising[j]], configuration: configuration)
                    let advertisement = try client.advertise()
                    return (client, advertisement, Date().timeIntervalSince(start))
                }
            }
            var clients = [SecAggClient?](repeating: nil, count: n)
            for (i, result) in zip(advertising, advertised) {
                let (client, advertisement, seconds) = try result.get()
                outcome.clientSeconds[0][i] = seconds
                outcome.bytes[i] += 64
                clients[i] = client
                try timed(0) { () throws(SecAggError) in try server.receive(advertisement) }
            }
            let rosters: [String: [KeyAdvertisement]]
            do { rosters = try timed(0) { () throws(SecAggError) in try server.closeAdvertising() } } catch { return aborted(error) }
            endPhase(0)

            // Phase 2: share keys (X25519, Shamir and AEAD per neighbour), on the workers.
            let sharing = (0..<n).filter { stays(ids[$0], 1) && clients[$0] != nil && rosters[ids[$0]] != nil }
            let shared = Parallel.map(sharing.count) { j -> Result<(SecAggClient, [EncryptedShare], Double), SecAggError> in
                var client = clients[sharing[j]]!
                return Result { () throws(SecAggError) in
                    let start = Date()
                    let shares = try client.shareKeys(roster: rosters[ids[sharing[j]]]!)
                    return (client, shares, Date().timeIntervalSince(start))
                }
            }
            for (i, result) in zip(sharing, shared) {
                // An edge whose neighbourhood is below the threshold cannot go on: it drops out here.
                if case .failure(let error) = result, error.kind == .tooFewSurvivors { continue }
                let (client, shares, seconds) = try result.get()
                clients[i] = client
                outcome.clientSeconds[1][i] = seconds
                outcome.bytes[i] += shares.reduce(0) { $0 + $1.box.count }
                try timed(1) { () throws(SecAggError) in try server.receive(shares: shares, from: ids[i]) }
            }
            let inbox: [String: [EncryptedShare]]
            do { inbox = try timed(1) { () throws(SecAggError) in try server.closeSharing() } } catch { return aborted(error) }
            endPhase(1)

            // Phase 3: each edge's input and masking on the workers; the server adds each masked vector as it comes.
            let masking = (0..<n).filter { stays(ids[$0], 2) && clients[$0] != nil && inbox[ids[$0]] != nil }
            let guarded = Mutex((server: server, seconds: 0.0))
            let next = Atomic<Int>(0)
            let perWorker = Parallel.map(min(workers, max(1, masking.count))) { w -> [(Int, Result<(SecAggClient, Int, Double)?, CoreError>)] in
                var done = [(Int, Result<(SecAggClient, Int, Double)?, CoreError>)]()
                while true {
                    let j = next.add(1, ordering: .relaxed).oldValue
                    guard j < masking.count else { break }
                    let i = masking[j]
                    done.append((i, Result { () throws(CoreError) -> (SecAggClient, Int, Double)? in
                        guard let words = try input(i, w) else { return nil }
                        var client = clients[i]!
                        do throws(SecAggError) {
                            let start = Date()
                            let masked = try client.maskedInput(words, shares: inbox[ids[i]]!)
                            let seconds = Date().timeIntervalSince(start)
                            try guarded.withLock { (state: inout (server: SecAggServer, seconds: Double)) throws(SecAggError) in
                                let start = Date()
                                try state.server.receive(masked)
                                state.seconds += Date().timeIntervalSince(start)
                            }
                            return (client, masked.words.count * 4, seconds)
                        } catch {
                            // Too few of its neighbours shared keys: it drops out here.
                            if error.kind == .tooFewSurvivors { return nil }
                            throw CoreError(.invalidData, "\(ids[i]): secure aggregation refused a message: \(error.message)")
                        }
                    }))
                }
                return done
            }
            for (i, result) in perWorker.joined() {
                guard let masked = try result.get() else { continue }
                clients[i] = masked.0
                outcome.bytes[i] += masked.1
                outcome.clientSeconds[2][i] = masked.2
            }
            (server, outcome.serverSeconds[2]) = guarded.withLock { ($0.server, $0.seconds) }
            let requests: [String: UnmaskRequest]
            do { requests = try timed(2) { () throws(SecAggError) in try server.closeMasking() } } catch { return aborted(error) }
            endPhase(2)

            // Phase 4: survivors reveal shares; the server removes the masks.
            for i in 0..<n where stays(ids[i], 3) {
                guard let request = requests[ids[i]], var client = clients[i] else { continue }
                let start = Date()
                let answer = Result { () throws(SecAggError) in try client.unmask(request) }
                outcome.clientSeconds[3][i] = Date().timeIntervalSince(start)
                if case .failure(let error) = answer, error.kind == .tooFewSurvivors { continue }
                let response = try answer.get()
                outcome.bytes[i] += (1 + MaskStream.seedBytes) * (response.seedShares.count + response.keyShares.count)
                try timed(3) { () throws(SecAggError) in try server.receive(response) }
            }
            do { outcome.result = try timed(3) { () throws(SecAggError) in try server.finish() } } catch { return aborted(error) }
            endPhase(3)
            outcome.droppedPerPhase = server.droppedPerPhase
            return outcome
        } catch let error as SecAggError {
            // Every message here comes from honest in-process edges: a refusal is a bug, not a drop-out.
            throw CoreError(.invalidData, "secure aggregation refused a message: \(error.message)")
        } catch let error as CoreError {
            throw error
        } catch {
            throw CoreError(.invalidData, "secure aggregation: \(error)")
        }
    }
}

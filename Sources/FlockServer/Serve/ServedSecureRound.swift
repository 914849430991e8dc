import FlockCompression
import FlockCrypto
import FlockSecAgg
import FlockWire

/// The open round's secure aggregation on the server: the protocol state machine, the fixed-point codec the
/// edges encode with, which phase the round is in and until when, and what each edge is waiting for.
///
/// Phases advance when every expected edge has answered or when the phase's deadline passes (the edges that
/// did not answer have dropped out). The masked-input phase is the round's collection phase: it ends when
/// the round state machine says the round has enough updates (over-selection) or times out.
struct ServedSecureRound: Sendable {
    enum Phase: Int, Sendable { case advertising, sharing, masking, unmasking }

    /// What the masked vectors encode.
    enum Encoding: Sendable {
        /// Weighted updates in the round's ring codec.
        case update(RingCodec)
        /// The feature moments of a statistics round.
        case moments(FeatureMoments)

        /// The codec identifier edges must name.
        var identifier: String {
            switch self {
            case .update(let codec): codec.identifier
            case .moments: FeatureMoments.identifier
            }
        }

        /// Words of one edge's vector, for a model of `length` parameters.
        func wordCount(length: Int) -> Int {
            switch self {
            case .update(let codec): codec.wordCount(length: length)
            case .moments(let moments): moments.wordCount
            }
        }
    }

    /// What the unmasked sum decodes to.
    enum Outcome: Sendable {
        /// The survivors' weighted mean update, and for a quantizer the next round's block ranges.
        case update(mean: [Float], nextRanges: [Float]?)
        /// The federation's feature totals.
        case moments(FeatureMoments.Totals)
    }

    private(set) var protocolServer: SecAggServer
    let encoding: Encoding
    private(set) var phase = Phase.advertising
    /// When the current key phase (advertising, sharing, unmasking) closes without the missing edges.
    private(set) var deadline: Double
    private(set) var rosters: [String: [KeyAdvertisement]] = [:]
    private(set) var inbox: [String: [EncryptedShare]] = [:]
    private(set) var requests: [String: UnmaskRequest] = [:]
    private var advertised: Set<String> = []
    private var shared: Set<String> = []
    private var revealed: Set<String> = []
    /// Edges whose protocol state is gone (their process restarted after advertising keys).
    private var departed: Set<String> = []
    private var phaseStarted: Double
    /// Seconds each phase took.
    private(set) var phaseSeconds = [0.0, 0, 0, 0]
    let phaseLength: Double

    init(configuration: SecAggConfiguration, encoding: Encoding, threads: Int, now: Double, phaseLength: Double) throws(SecAggError) {
        protocolServer = try SecAggServer(configuration: configuration)
        protocolServer.threads = threads
        self.encoding = encoding
        self.phaseLength = phaseLength
        deadline = now + phaseLength
        phaseStarted = now
    }

    var configuration: SecAggConfiguration { protocolServer.configuration }

    /// The edges whose answer the current key phase still waits for (none in the masked-input phase, which
    /// the round state machine tracks).
    var awaited: [String] {
        let waiting: [String] = switch phase {
        case .advertising: configuration.participants.filter { !advertised.contains($0) }
        case .sharing: rosters.keys.filter { !shared.contains($0) }
        case .masking: []
        case .unmasking: requests.keys.filter { !revealed.contains($0) }
        }
        return waiting.filter { !departed.contains($0) }
    }

    /// Records that `id` lost its keys (its process restarted): no phase waits for it any more.
    mutating func forget(_ id: String) { departed.insert(id) }

    /// Edges that dropped in each phase so far.
    var droppedPerPhase: [Int] { protocolServer.droppedPerPhase }

    private mutating func enter(_ next: Phase, now: Double) {
        phaseSeconds[phase.rawValue] = now - phaseStarted
        phaseStarted = now
        phase = next
        deadline = now + phaseLength
    }

    /// Takes an edge's keys. - Returns: true when every participant has advertised.
    mutating func receive(_ ad: KeyAdvertisement) throws(SecAggError) -> Bool {
        try protocolServer.receive(ad)
        advertised.insert(ad.id)
        return advertised.count == configuration.participants.count
    }

    /// Ends phase 1.
    mutating func closeAdvertising(now: Double) throws(SecAggError) {
        rosters = try protocolServer.closeAdvertising()
        enter(.sharing, now: now)
    }

    /// Takes an edge's sealed shares. - Returns: true when every advertiser has shared.
    mutating func receive(shares: [EncryptedShare], from id: String) throws(SecAggError) -> Bool {
        try protocolServer.receive(shares: shares, from: id)
        shared.insert(id)
        return shared.count == rosters.count
    }

    /// Ends phase 2.
    mutating func closeSharing(now: Double) throws(SecAggError) {
        inbox = try protocolServer.closeSharing()
        enter(.masking, now: now)
    }

    /// Whether `id` has advertised its keys.
    func hasAdvertised(_ id: String) -> Bool { advertised.contains(id) }

    /// Whether `id` may send a masked input now.
    func expectsMaskedInput(from id: String) -> Bool { phase == .masking && inbox[id] != nil }

    /// Adds a masked input to the sum.
    mutating func receive(_ input: MaskedInput) throws(SecAggError) { try protocolServer.receive(input) }

    /// Ends phase 3.
    mutating func closeMasking(now: Double) throws(SecAggError) {
        requests = try protocolServer.closeMasking()
        enter(.unmasking, now: now)
    }

    /// Takes revealed shares. - Returns: true when every survivor asked has answered.
    mutating func receive(_ response: UnmaskResponse) throws(SecAggError) -> Bool {
        try protocolServer.receive(response)
        revealed.insert(response.id)
        return revealed.count == requests.count
    }

    /// Ends the round: unmasks the sum and decodes it: the survivors' weighted mean update (and, for a
    /// quantizer, the next round's block ranges), or the federation's feature totals.
    mutating func finish(now: Double) throws(SecAggError) -> (outcome: Outcome, included: [String]) {
        let (sum, included) = try protocolServer.finish()
        phaseSeconds[Phase.unmasking.rawValue] = now - phaseStarted
        do {
            switch encoding {
            case .update(let codec):
                let decoded = try codec.decodeMean(sum: sum, summands: included.count)
                return (.update(mean: decoded.mean, nextRanges: decoded.nextRanges), included)
            case .moments(let moments):
                return (.moments(try moments.decode(sum: sum)), included)
            }
        } catch {
            throw SecAggError(.malformed, error.message)
        }
    }

    /// What `id`, waiting for `phase`, gets now: nil when not ready yet.
    func step(for id: String, waitingFor wanted: Flock_V1_SecAggPhase) -> Flock_V1_SecAggStep? {
        var step = Flock_V1_SecAggStep()
        switch wanted {
        case .roster:
            guard phase.rawValue > Phase.advertising.rawValue else { return nil }
            guard let roster = rosters[id] else { step.aborted = "advertising closed without this edge's keys"; return step }
            step.roster = Flock_V1_SecAggRoster.with { $0.keys = roster.map(Flock_V1_SecAggKeys.init) }
        case .inbox:
            guard phase.rawValue > Phase.sharing.rawValue else { return nil }
            guard let shares = inbox[id] else { step.aborted = "sharing closed without this edge's shares"; return step }
            step.inbox = Flock_V1_SecAggInbox.with { $0.shares = shares.map(Flock_V1_SealedShare.init) }
        case .unmask:
            guard phase.rawValue > Phase.masking.rawValue else { return nil }
            guard let request = requests[id] else { step.aborted = "masking closed without this edge's input"; return step }
            step.unmask = Flock_V1_SecAggUnmaskRequest.with {
                $0.survivors = request.survivors
                $0.dropped = request.dropped
            }
        case .unspecified, .UNRECOGNIZED:
            step.aborted = "unknown phase"
        }
        return step
    }
}

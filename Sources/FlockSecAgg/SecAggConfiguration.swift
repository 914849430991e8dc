import FlockCrypto

/// Why a secure-aggregation message or step was refused. The state is unchanged after a refusal.
public struct SecAggError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of refusal.
    public enum Kind: Sendable, Equatable {
        /// The message belongs to another phase than the current one.
        case wrongPhase
        /// The message names another round.
        case wrongRound
        /// The sender or recipient is not a participant, or not a neighbour where one is required.
        case notAllowed
        /// A second message of a kind allowed once.
        case duplicate
        /// A message of the wrong size or form, or one that does not authenticate.
        case malformed
        /// Fewer than the threshold of participants are left: the round aborts, nothing is aggregated.
        case tooFewSurvivors
        /// An edge refuses a request that would reveal more than the protocol allows.
        case refused
    }

    /// The kind.
    public let kind: Kind
    /// A one-line message.
    public let message: String

    /// Creates an error.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// The parameters of one round's secure aggregation, carried in the round plan: who takes part, the
/// neighbour graph and the reconstruction threshold.
///
/// Graph: `complete` is the 2017 protocol (Bonawitz et al., CCS 2017, "Practical Secure Aggregation for
/// Privacy-Preserving Machine Learning"): everyone masks with everyone. `secagg+` is the sparse graph of
/// Bell et al. (CCS 2020, "Secure Single-Server Aggregation with (Poly)Logarithmic Overhead"): the
/// participants are placed on a ring in a seeded random order (BLAKE2b of seed and id) and each is linked
/// to the k/2 nearest on either side (a randomly labelled Harary graph), so cost grows with k, not n.
/// Shares of an edge's secrets go to its neighbours and to itself (k + 1 shares, at most 255).
public struct SecAggConfiguration: Sendable, Codable, Equatable {
    /// The round.
    public var round: UInt64
    /// Participant ids, sorted and unique.
    public var participants: [String]
    /// Neighbours per participant (k, even); n - 1 or more means the complete graph.
    public var neighbourCount: Int
    /// Shares needed to reconstruct a secret (t).
    public var threshold: Int
    /// Words (UInt32) in each input vector.
    public var vectorLength: Int
    /// Seed of the ring order.
    public var graphSeed: UInt64

    /// Creates a configuration; ``validate()`` checks it.
    public init(round: UInt64, participants: [String], neighbourCount: Int, threshold: Int, vectorLength: Int, graphSeed: UInt64) {
        self.round = round
        self.participants = participants
        self.neighbourCount = neighbourCount
        self.threshold = threshold
        self.vectorLength = vectorLength
        self.graphSeed = graphSeed
    }

    /// A configuration with the defaults: k = 2 * ceil(log2 n) rounded up to even (the complete graph for
    /// `complete` or small n), t = ceil(2/3 (k + 1)).
    public static func make(
        round: UInt64, participants: [String], vectorLength: Int, complete: Bool = false, graphSeed: UInt64 = 0,
        threshold: Int? = nil
    ) -> SecAggConfiguration {
        let ids = Array(Set(participants)).sorted()
        let n = ids.count
        // ceil(log2 n) for n >= 2: the bit length of n - 1.
        let log2n = n <= 1 ? 1 : (n - 1).bitWidth - (n - 1).leadingZeroBitCount
        var k = complete ? n - 1 : 2 * log2n
        k = min(n - 1, k + k % 2)
        let t = threshold ?? Int((2.0 * Double(k + 1) / 3.0).rounded(.up))
        return SecAggConfiguration(
            round: round, participants: ids, neighbourCount: k, threshold: max(1, t), vectorLength: vectorLength, graphSeed: graphSeed)
    }

    /// Checks sizes and ranges.
    /// - Throws: ``SecAggError/Kind/malformed`` naming the bad value.
    public func validate() throws(SecAggError) {
        guard participants.count >= 1, participants == Array(Set(participants)).sorted() else {
            throw SecAggError(.malformed, "participants must be unique and sorted")
        }
        guard neighbourCount >= 1 || participants.count == 1, neighbourCount <= 254 else {
            throw SecAggError(.malformed, "neighbours per edge must be 1-254 (shares go to the neighbours and the edge itself)")
        }
        guard threshold >= 1, threshold <= neighbourhoodSize else {
            throw SecAggError(.malformed, "threshold \(threshold) must be 1-\(neighbourhoodSize) (the neighbourhood with the edge itself)")
        }
        guard vectorLength >= 1, vectorLength <= 1 << 28 else { throw SecAggError(.malformed, "vector length must be 1-2^28 words") }
    }

    /// True when everyone is everyone's neighbour.
    public var isComplete: Bool { neighbourCount >= participants.count - 1 }

    /// Size of a neighbourhood counting the edge itself: the number of shares of each secret.
    public var neighbourhoodSize: Int { min(participants.count, neighbourCount + 1) }

    /// The neighbours of `id` (not including it), sorted. (Servers build the whole ``NeighbourGraph`` once
    /// instead of asking here per edge.)
    public func neighbours(of id: String) -> [String] { NeighbourGraph(self, around: id).neighbours(of: id) }

    /// The key-derivation context of this round's pairwise masks.
    var maskContext: String { "flock-secagg mask round \(round)" }
    /// The key-derivation context of this round's share encryption.
    var shareContext: String { "flock-secagg shares round \(round)" }

    /// Associated data binding an encrypted share to its round, sender and recipient.
    func shareAssociatedData(from: String, to: String) -> [UInt8] {
        Array("\(round)\u{0}\(from)\u{0}\(to)".utf8)
    }
}

/// The neighbour lists of one round, computed once from its configuration: every edge's neighbours and
/// the share index (x coordinate) each holder gets for each owner's secrets.
///
/// A server needs every list; an edge only its own and its neighbours' (to check the shares they send),
/// so `around` limits the lists to those: with SecAgg+ at n = 500 that is 19 lists instead of 500.
struct NeighbourGraph: Sendable {
    private let lists: [String: [String]]

    /// The lists of every edge, or with `around` only of that edge and its neighbours.
    init(_ configuration: SecAggConfiguration, around center: String? = nil) {
        let ids = configuration.participants
        if configuration.isComplete {
            lists = Dictionary(uniqueKeysWithValues: ids.map { id in (id, ids.filter { $0 != id }) })
            return
        }
        var seedBytes = [UInt8]()
        for shift in stride(from: 0, to: 64, by: 8) { seedBytes.append(UInt8(truncatingIfNeeded: configuration.graphSeed >> UInt64(shift))) }
        let ring = ids
            .map { (BLAKE2b.hash(seedBytes + Array($0.utf8), outputBytes: 16), $0) }
            .sorted { $0.0.lexicographicallyPrecedes($1.0) }
            .map(\.1)
        let half = max(1, configuration.neighbourCount / 2)
        func around(_ position: Int) -> [Int] {
            (1...half).flatMap { [(position + $0) % ring.count, (position - $0 + ring.count) % ring.count] }
        }
        var positions = Array(ring.indices)
        if let center, let position = ring.firstIndex(of: center) { positions = [position] + around(position) }
        var lists = [String: [String]]()
        for position in positions where lists[ring[position]] == nil {
            lists[ring[position]] = Set(around(position).map { ring[$0] }).sorted()
        }
        self.lists = lists
    }

    /// The neighbours of `id` (not including it), sorted; empty for a non-participant or, with `around`,
    /// an edge beyond the centre's neighbourhood.
    func neighbours(of id: String) -> [String] { lists[id] ?? [] }

    /// The share index (x coordinate, 1-based) that `holder` gets for secrets of `owner`: its place in the
    /// sorted list of `owner`'s neighbours with `owner` itself; nil when it is neither.
    func shareIndex(owner: String, holder: String) -> UInt8? {
        guard let list = lists[owner] else { return nil }
        // Neighbours sorting before `holder`, by binary search in the sorted list (no list built per call).
        var low = 0, high = list.count
        while low < high {
            let middle = (low + high) / 2
            if list[middle] < holder { low = middle + 1 } else { high = middle }
        }
        guard holder == owner || (low < list.count && list[low] == holder) else { return nil }
        return UInt8(low + (owner < holder ? 1 : 0) + 1)
    }
}

import FlockCrypto

/// The server's side of secure aggregation for one round: relays keys and sealed shares, sums the masked
/// inputs, and removes the masks from the shares the survivors reveal, so that it learns only the sum of
/// the survivors' inputs (Bonawitz et al. 2017, §4; SecAgg+ neighbourhoods, Bell et al. 2020). Pure
/// protocol, no I/O. Each phase collects messages until its `close…` call (the caller's deadline); an
/// edge that has not answered by then has dropped out. Refused messages change nothing.
public struct SecAggServer: Sendable {
    private enum Phase: Sendable { case advertising, sharing, masking, unmasking, finished }

    /// The round's parameters.
    public let configuration: SecAggConfiguration
    private let graph: NeighbourGraph
    private var phase = Phase.advertising
    private var advertisements: [String: KeyAdvertisement] = [:]
    private var shares: [String: [EncryptedShare]] = [:]
    private var sum: [UInt32]
    private var masked: Set<String> = []
    private var responses: [String: UnmaskResponse] = [:]
    private var requests: [String: UnmaskRequest] = [:]
    /// Threads that expand the masks to remove.
    public var threads = 1
    /// Edges that dropped in each phase: advertise, share, mask, unmask.
    public private(set) var droppedPerPhase = [0, 0, 0, 0]

    /// Starts a round.
    /// - Throws: ``SecAggError`` for a bad configuration.
    public init(configuration: SecAggConfiguration) throws(SecAggError) {
        try configuration.validate()
        self.configuration = configuration
        graph = NeighbourGraph(configuration)
        sum = [UInt32](repeating: 0, count: configuration.vectorLength)
    }

    private func check(_ id: String, round: UInt64, phase expected: Phase) throws(SecAggError) {
        guard phase == expected else { throw SecAggError(.wrongPhase, "message from \(id) arrived outside its phase") }
        guard round == configuration.round else { throw SecAggError(.wrongRound, "message from \(id) is for round \(round), not \(configuration.round)") }
    }

    // MARK: Phase 1

    /// Takes one edge's public keys.
    public mutating func receive(_ ad: KeyAdvertisement) throws(SecAggError) {
        try check(ad.id, round: ad.round, phase: .advertising)
        guard configuration.participants.contains(ad.id) else { throw SecAggError(.notAllowed, "\(ad.id) does not take part") }
        guard advertisements[ad.id] == nil else { throw SecAggError(.duplicate, "\(ad.id) already advertised keys") }
        advertisements[ad.id] = ad
    }

    /// Ends phase 1: the roster each advertiser gets (its neighbours' keys and its own).
    /// - Throws: ``SecAggError/Kind/tooFewSurvivors`` when fewer than the threshold advertised.
    public mutating func closeAdvertising() throws(SecAggError) -> [String: [KeyAdvertisement]] {
        guard phase == .advertising else { throw SecAggError(.wrongPhase, "advertising is closed") }
        try requireThreshold(advertisements.count, "advertised keys")
        droppedPerPhase[0] = configuration.participants.count - advertisements.count
        phase = .sharing
        var rosters = [String: [KeyAdvertisement]]()
        for id in advertisements.keys {
            rosters[id] = ([id] + graph.neighbours(of: id)).compactMap { advertisements[$0] }
        }
        return rosters
    }

    // MARK: Phase 2

    /// Takes the sealed shares one edge sends its neighbours.
    public mutating func receive(shares sent: [EncryptedShare], from id: String) throws(SecAggError) {
        guard phase == .sharing else { throw SecAggError(.wrongPhase, "shares from \(id) arrived outside their phase") }
        guard advertisements[id] != nil else { throw SecAggError(.notAllowed, "\(id) did not advertise keys") }
        guard shares[id] == nil else { throw SecAggError(.duplicate, "\(id) already sent its shares") }
        // Filtering the few neighbours, not intersecting with every advertiser's id (n per edge, n² a round).
        let allowed = Set(graph.neighbours(of: id).filter { advertisements[$0] != nil })
        var seen = Set<String>()
        for share in sent {
            try check(id, round: share.round, phase: .sharing)
            guard share.from == id else { throw SecAggError(.notAllowed, "\(id) sent a share in the name of \(share.from)") }
            guard allowed.contains(share.to) else { throw SecAggError(.notAllowed, "\(share.to) is not a neighbour of \(id) with keys") }
            guard seen.insert(share.to).inserted else { throw SecAggError(.duplicate, "\(id) sent two shares to \(share.to)") }
            guard share.box.count == 2 * (1 + MaskStream.seedBytes) + AEAD.nonceBytes + AEAD.tagBytes else {
                throw SecAggError(.malformed, "share from \(id) to \(share.to) has \(share.box.count) bytes")
            }
        }
        shares[id] = sent
    }

    /// Ends phase 2: the shares each edge that sent its own receives (only from edges that also sent).
    public mutating func closeSharing() throws(SecAggError) -> [String: [EncryptedShare]] {
        guard phase == .sharing else { throw SecAggError(.wrongPhase, "sharing is closed") }
        try requireThreshold(shares.count, "shared keys")
        droppedPerPhase[1] = advertisements.count - shares.count
        phase = .masking
        var inbox = [String: [EncryptedShare]]()
        for id in shares.keys { inbox[id] = [] }
        for sent in shares.values {
            for share in sent where inbox[share.to] != nil { inbox[share.to]!.append(share) }
        }
        return inbox
    }

    // MARK: Phase 3

    /// Adds one edge's masked input to the running sum.
    public mutating func receive(_ input: MaskedInput) throws(SecAggError) {
        try check(input.id, round: input.round, phase: .masking)
        guard shares[input.id] != nil else { throw SecAggError(.notAllowed, "\(input.id) did not share keys") }
        guard !masked.contains(input.id) else { throw SecAggError(.duplicate, "\(input.id) already sent its masked input") }
        guard input.words.count == configuration.vectorLength else {
            throw SecAggError(.malformed, "masked input of \(input.id) has \(input.words.count) words; \(configuration.vectorLength) expected")
        }
        sum.withUnsafeMutableBufferPointer { total in
            input.words.withUnsafeBufferPointer { words in
                for i in 0..<total.count { total[i] &+= words[i] }
            }
        }
        masked.insert(input.id)
    }

    /// Ends phase 3: what each survivor is asked to reveal.
    public mutating func closeMasking() throws(SecAggError) -> [String: UnmaskRequest] {
        guard phase == .masking else { throw SecAggError(.wrongPhase, "masking is closed") }
        try requireThreshold(masked.count, "sent masked inputs")
        droppedPerPhase[2] = shares.count - masked.count
        phase = .unmasking
        for id in masked {
            let group = Set(graph.neighbours(of: id).filter { shares[$0] != nil })
            requests[id] = UnmaskRequest(
                round: configuration.round, survivors: group.filter { masked.contains($0) }.union([id]).sorted(),
                dropped: group.filter { !masked.contains($0) }.sorted())
        }
        return requests
    }

    // MARK: Phase 4

    /// Takes one survivor's revealed shares.
    public mutating func receive(_ response: UnmaskResponse) throws(SecAggError) {
        try check(response.id, round: response.round, phase: .unmasking)
        guard let request = requests[response.id] else { throw SecAggError(.notAllowed, "\(response.id) was not asked to unmask") }
        guard responses[response.id] == nil else { throw SecAggError(.duplicate, "\(response.id) already answered") }
        guard Set(response.seedShares.keys) == Set(request.survivors), Set(response.keyShares.keys) == Set(request.dropped) else {
            throw SecAggError(.malformed, "\(response.id) answered other edges than it was asked for")
        }
        for (owner, share) in response.seedShares.merging(response.keyShares, uniquingKeysWith: { a, _ in a }) {
            guard share.x == graph.shareIndex(owner: owner, holder: response.id), share.y.count == MaskStream.seedBytes else {
                throw SecAggError(.malformed, "\(response.id)'s share of \(owner) has the wrong index or size")
            }
        }
        responses[response.id] = response
    }

    /// Ends the round: reconstructs every survivor's self-mask seed and every dropped edge's masking key
    /// from the revealed shares and removes their masks from the sum.
    /// - Returns: the sum of the inputs of the edges in `included` (the survivors, sorted), modulo 2^32.
    /// - Throws: ``SecAggError/Kind/tooFewSurvivors`` when a secret has fewer than the threshold of shares:
    ///   the round aborts and nothing is aggregated.
    public mutating func finish() throws(SecAggError) -> (sum: [UInt32], included: [String]) {
        guard phase == .unmasking else { throw SecAggError(.wrongPhase, "the round is not unmasking") }
        droppedPerPhase[3] = masked.count - responses.count
        var total = sum
        let t = configuration.threshold
        // Every revealed share once, by owner (not every response searched for each owner: n² lookups).
        var seedPieces: [String: [Shamir.Share]] = [:], keyPieces: [String: [Shamir.Share]] = [:]
        for response in responses.values {
            for (owner, share) in response.seedShares { seedPieces[owner, default: []].append(share) }
            for (owner, share) in response.keyShares { keyPieces[owner, default: []].append(share) }
        }
        var terms = [MaskStream.Term]()
        for owner in masked.sorted() {
            let pieces = seedPieces[owner] ?? []
            let seed: SecretBytes
            do { seed = try Shamir.combine(pieces, threshold: t) } catch {
                throw SecAggError(.tooFewSurvivors, "\(pieces.count) shares of \(owner)'s self mask came back; \(t) needed")
            }
            terms.append(MaskStream.Term(seed: seed, sign: -1))
        }
        let droppedAfterSharing = Set(shares.keys).subtracting(masked)
        for gone in droppedAfterSharing.sorted() {
            let pieces = keyPieces[gone] ?? []
            let key: X25519.KeyPair
            do { key = try X25519.KeyPair(privateKey: Shamir.combine(pieces, threshold: t)) } catch {
                throw SecAggError(.tooFewSurvivors, "\(pieces.count) shares of \(gone)'s masking key came back; \(t) needed")
            }
            // Each surviving neighbour u added sign(u, gone) * PRG(s(u, gone)); take it out again.
            for u in Set(graph.neighbours(of: gone).filter { masked.contains($0) }).sorted() {
                let seed: SecretBytes
                do { seed = try key.sharedKey(with: advertisements[u]!.maskingKey, context: configuration.maskContext) } catch {
                    throw SecAggError(.malformed, "\(u): \(error.message)")
                }
                terms.append(MaskStream.Term(seed: seed, sign: u < gone ? -1 : 1))
            }
        }
        MaskStream.add(terms, into: &total, threads: threads)
        phase = .finished
        return (total, masked.sorted())
    }

    private func requireThreshold(_ count: Int, _ what: String) throws(SecAggError) {
        guard count >= configuration.threshold else {
            throw SecAggError(.tooFewSurvivors, "only \(count) edges \(what); \(configuration.threshold) needed: the round aborts")
        }
    }
}

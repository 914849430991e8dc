import FlockCrypto

/// One edge's side of secure aggregation for one round (Bonawitz et al. 2017, §4, with the neighbour
/// graph of SecAgg+). Pure protocol, no I/O: feed it the server's messages in order; anything out of
/// order, for another round, or from a non-neighbour is refused and changes nothing.
///
/// Phases: ``advertise()`` → ``shareKeys(roster:)`` → ``maskedInput(_:shares:)`` → ``unmask(_:)``.
public struct SecAggClient: Sendable {
    private enum Phase: Sendable { case start, advertised, shared, masked, done }

    /// This edge.
    public let id: String
    /// The round's parameters.
    public let configuration: SecAggConfiguration
    private let graph: NeighbourGraph
    private let neighbours: Set<String>
    private var phase = Phase.start
    private let encryption = X25519.KeyPair.generate()
    private let masking = X25519.KeyPair.generate()
    private let selfMaskSeed = SecretBytes.random(count: MaskStream.seedBytes)
    private var roster: [String: KeyAdvertisement] = [:]
    /// Shares this edge holds, by owner (its own included).
    private var heldKeyShares: [String: Shamir.Share] = [:]
    private var heldSeedShares: [String: Shamir.Share] = [:]
    /// Neighbours whose shares arrived: the pairwise masks were made with exactly these.
    private var maskPartners: Set<String> = []
    /// The share-encryption key agreed with each neighbour in phase 2, reused to open its shares in phase 3.
    private var shareKeysByNeighbour: [String: SecretBytes] = [:]

    /// Prepares the edge's side.
    /// - Throws: ``SecAggError`` for a bad configuration or an id that does not take part.
    public init(id: String, configuration: SecAggConfiguration) throws(SecAggError) {
        try configuration.validate()
        guard configuration.participants.contains(id) else { throw SecAggError(.notAllowed, "\(id) does not take part in round \(configuration.round)") }
        self.id = id
        self.configuration = configuration
        graph = NeighbourGraph(configuration, around: id)
        neighbours = Set(graph.neighbours(of: id))
    }

    /// Phase 1: the public keys to send.
    public mutating func advertise() throws(SecAggError) -> KeyAdvertisement {
        guard phase == .start else { throw SecAggError(.wrongPhase, "keys were already advertised") }
        phase = .advertised
        return KeyAdvertisement(id: id, round: configuration.round, encryptionKey: encryption.publicKey, maskingKey: masking.publicKey)
    }

    /// Phase 2: checks the neighbours' keys the server relayed and returns the sealed shares for them.
    /// - Throws: ``SecAggError`` for another round, a non-neighbour, repeated keys, this edge's keys altered,
    ///   or fewer than the threshold.
    public mutating func shareKeys(roster advertisements: [KeyAdvertisement]) throws(SecAggError) -> [EncryptedShare] {
        guard phase == .advertised else { throw SecAggError(.wrongPhase, "not expecting the key roster now") }
        var roster = [String: KeyAdvertisement]()
        for ad in advertisements {
            guard ad.round == configuration.round else { throw SecAggError(.wrongRound, "roster entry of \(ad.id) is for round \(ad.round)") }
            guard ad.id == id || neighbours.contains(ad.id) else { throw SecAggError(.notAllowed, "\(ad.id) is not a neighbour of \(id)") }
            guard roster[ad.id] == nil else { throw SecAggError(.duplicate, "\(ad.id) appears twice in the roster") }
            roster[ad.id] = ad
        }
        guard roster[id]?.encryptionKey == encryption.publicKey, roster[id]?.maskingKey == masking.publicKey else {
            throw SecAggError(.malformed, "the roster does not carry this edge's own keys unchanged")
        }
        let keys = roster.values.flatMap { [$0.encryptionKey.bytes, $0.maskingKey.bytes] }
        guard Set(keys).count == keys.count else { throw SecAggError(.malformed, "the roster repeats a public key") }
        guard roster.count >= configuration.threshold else {
            throw SecAggError(.tooFewSurvivors, "\(roster.count) of \(id)'s neighbourhood advertised keys; \(configuration.threshold) needed")
        }
        let size = configuration.neighbourhoodSize
        let keyShares: [Shamir.Share]
        let seedShares: [Shamir.Share]
        do {
            keyShares = try Shamir.split(masking.privateKey, threshold: configuration.threshold, count: size)
            seedShares = try Shamir.split(selfMaskSeed, threshold: configuration.threshold, count: size)
        } catch {
            throw SecAggError(.malformed, error.message)
        }
        var out = [EncryptedShare]()
        var agreed = [String: SecretBytes]()
        for holder in roster.keys.sorted() {
            let x = Int(graph.shareIndex(owner: id, holder: holder)!) - 1
            if holder == id {
                heldKeyShares[id] = keyShares[x]
                heldSeedShares[id] = seedShares[x]
                continue
            }
            do {
                let key = try encryption.sharedKey(with: roster[holder]!.encryptionKey, context: configuration.shareContext)
                agreed[holder] = key
                let box = try AEAD.seal(
                    keyShares[x].bytes + seedShares[x].bytes, key: key,
                    associatedData: configuration.shareAssociatedData(from: id, to: holder))
                out.append(EncryptedShare(from: id, to: holder, round: configuration.round, box: box))
            } catch {
                throw SecAggError(.malformed, "\(holder): \(error.message)")
            }
        }
        self.roster = roster
        shareKeysByNeighbour = agreed
        phase = .shared
        return out
    }

    /// Phase 3: opens the shares neighbours sent, then masks `input` with the self mask and one pairwise
    /// mask per neighbour that sent shares (added when this edge's id sorts first, subtracted otherwise).
    /// - Throws: ``SecAggError`` for a wrong length, a share that is not for this edge or round, from a
    ///   non-neighbour, repeated, or that does not authenticate; or fewer than the threshold.
    public mutating func maskedInput(_ input: [UInt32], shares: [EncryptedShare]) throws(SecAggError) -> MaskedInput {
        guard phase == .shared else { throw SecAggError(.wrongPhase, "not expecting shares now") }
        guard input.count == configuration.vectorLength else {
            throw SecAggError(.malformed, "input has \(input.count) words; the round expects \(configuration.vectorLength)")
        }
        var keyShares = heldKeyShares
        var seedShares = heldSeedShares
        for share in shares {
            guard share.round == configuration.round else { throw SecAggError(.wrongRound, "share from \(share.from) is for round \(share.round)") }
            guard share.to == id else { throw SecAggError(.notAllowed, "share from \(share.from) is addressed to \(share.to)") }
            guard share.from != id, roster[share.from] != nil, let key = shareKeysByNeighbour[share.from] else {
                throw SecAggError(.notAllowed, "\(share.from) is not a neighbour in the roster")
            }
            guard keyShares[share.from] == nil else { throw SecAggError(.duplicate, "a second share from \(share.from)") }
            let plain: [UInt8]
            do {
                plain = try AEAD.open(share.box, key: key, associatedData: configuration.shareAssociatedData(from: share.from, to: id))
            } catch {
                throw SecAggError(.malformed, "share from \(share.from): \(error.message)")
            }
            let expectedX = graph.shareIndex(owner: share.from, holder: id)
            guard plain.count == 2 * (1 + MaskStream.seedBytes), plain[0] == expectedX, plain[33] == expectedX else {
                throw SecAggError(.malformed, "share from \(share.from) has the wrong form")
            }
            keyShares[share.from] = try? Shamir.Share(bytes: Array(plain[0..<33]))
            seedShares[share.from] = try? Shamir.Share(bytes: Array(plain[33...]))
        }
        let partners = Set(keyShares.keys).subtracting([id])
        guard partners.count + 1 >= configuration.threshold else {
            throw SecAggError(.tooFewSurvivors, "shares from \(partners.count) neighbours reached \(id); \(configuration.threshold - 1) needed")
        }
        var terms = [MaskStream.Term(seed: selfMaskSeed, sign: 1)]
        for partner in partners.sorted() {
            let seed: SecretBytes
            do { seed = try masking.sharedKey(with: roster[partner]!.maskingKey, context: configuration.maskContext) } catch {
                throw SecAggError(.malformed, "\(partner): \(error.message)")
            }
            terms.append(MaskStream.Term(seed: seed, sign: id < partner ? 1 : -1))
        }
        var words = input
        MaskStream.add(terms, into: &words, threads: threads)
        heldKeyShares = keyShares
        heldSeedShares = seedShares
        maskPartners = partners
        phase = .masked
        return MaskedInput(id: id, round: configuration.round, words: words)
    }

    /// Phase 4: the shares the server asks for: self-mask seed shares of survivors, masking-key shares of
    /// edges that dropped after sharing. Answered once.
    /// - Throws: ``SecAggError/Kind/refused`` when an edge is named in both lists (that would reveal both of
    ///   its secrets and so its input), a dropped edge is this one, an edge is unknown to this one, or fewer
    ///   than the threshold survived.
    public mutating func unmask(_ request: UnmaskRequest) throws(SecAggError) -> UnmaskResponse {
        guard phase == .masked else { throw SecAggError(.wrongPhase, "unmasking is answered once, after the masked input") }
        guard request.round == configuration.round else { throw SecAggError(.wrongRound, "unmask request for round \(request.round)") }
        let survivors = Set(request.survivors)
        let dropped = Set(request.dropped)
        guard survivors.isDisjoint(with: dropped) else {
            throw SecAggError(.refused, "an edge is named both as survivor and as dropped: answering would reveal its input")
        }
        guard survivors.contains(id), !dropped.contains(id) else { throw SecAggError(.refused, "the request must list this edge as a survivor") }
        let known = maskPartners.union([id])
        guard survivors.isSubset(of: known), dropped.isSubset(of: maskPartners) else {
            throw SecAggError(.refused, "the request names edges that did not share keys with \(id)")
        }
        guard survivors.count >= configuration.threshold else {
            throw SecAggError(.tooFewSurvivors, "\(survivors.count) survivors; \(configuration.threshold) needed")
        }
        var seeds = [String: Shamir.Share]()
        for owner in survivors { seeds[owner] = heldSeedShares[owner] }
        var keys = [String: Shamir.Share]()
        for owner in dropped { keys[owner] = heldKeyShares[owner] }
        phase = .done
        return UnmaskResponse(id: id, round: configuration.round, seedShares: seeds, keyShares: keys)
    }

    /// Threads that expand the masks (the edge's cores).
    public var threads = 1

    /// This edge's masking public key (for tests and the server's bookkeeping).
    public var maskingKey: X25519.PublicKey { masking.publicKey }
}

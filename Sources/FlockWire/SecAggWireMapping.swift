import FlockCrypto
import FlockSecAgg
import Foundation

/// Mapping between the secure-aggregation wire messages and FlockSecAgg's values. Every conversion from the
/// wire checks sizes and throws ``SecAggError/Kind/malformed`` naming the bad field.
extension Flock_V1_SecAggKeys {
    /// The wire form of a key advertisement (the session is filled in by the sender).
    public init(_ ad: KeyAdvertisement) {
        self.init()
        edgeID = ad.id
        round = ad.round
        encryptionKey = Data(ad.encryptionKey.bytes)
        maskingKey = Data(ad.maskingKey.bytes)
    }

    /// The advertisement this message carries.
    public func advertisement() throws(SecAggError) -> KeyAdvertisement {
        guard WireLimits.isValidEdgeId(edgeID) else { throw SecAggError(.malformed, "malformed edge id in a key advertisement") }
        do {
            return KeyAdvertisement(
                id: edgeID, round: round, encryptionKey: try X25519.PublicKey(bytes: [UInt8](encryptionKey)),
                maskingKey: try X25519.PublicKey(bytes: [UInt8](maskingKey)))
        } catch {
            throw SecAggError(.malformed, "keys of \(edgeID): \(error.message)")
        }
    }
}

extension Flock_V1_SealedShare {
    /// Bytes of a sealed pair of shares: two 33-byte shares, the nonce and the tag.
    public static let boxBytes = 2 * (1 + MaskStream.seedBytes) + AEAD.nonceBytes + AEAD.tagBytes

    /// The wire form of a sealed share.
    public init(_ share: EncryptedShare) {
        self.init()
        from = share.from
        to = share.to
        box = Data(share.box)
    }

    /// The sealed share of `round` this message carries.
    public func share(round: UInt64) throws(SecAggError) -> EncryptedShare {
        guard WireLimits.isValidEdgeId(from), WireLimits.isValidEdgeId(to) else { throw SecAggError(.malformed, "malformed edge id in a sealed share") }
        guard box.count == Self.boxBytes else { throw SecAggError(.malformed, "a sealed share has \(Self.boxBytes) bytes, not \(box.count)") }
        return EncryptedShare(from: from, to: to, round: round, box: [UInt8](box))
    }
}

extension Flock_V1_SecAggUnmaskRequest {
    /// The request this message carries.
    public func request(round: UInt64) throws(SecAggError) -> UnmaskRequest {
        guard survivors.count + dropped.count <= 512, (survivors + dropped).allSatisfy(WireLimits.isValidEdgeId) else {
            throw SecAggError(.malformed, "malformed unmask request")
        }
        return UnmaskRequest(round: round, survivors: survivors, dropped: dropped)
    }
}

extension Flock_V1_SecAggReveal {
    /// The response this message carries.
    public func response() throws(SecAggError) -> UnmaskResponse {
        guard shares.count <= 512 else { throw SecAggError(.malformed, "at most 512 revealed shares") }
        var seeds = [String: Shamir.Share]()
        var keys = [String: Shamir.Share]()
        for revealed in shares {
            guard WireLimits.isValidEdgeId(revealed.owner), revealed.share.count == 1 + MaskStream.seedBytes,
                  let share = try? Shamir.Share(bytes: [UInt8](revealed.share)) else {
                throw SecAggError(.malformed, "a revealed share is an edge id and 33 bytes")
            }
            if revealed.maskingKey {
                guard keys.updateValue(share, forKey: revealed.owner) == nil else { throw SecAggError(.duplicate, "two key shares of \(revealed.owner)") }
            } else {
                guard seeds.updateValue(share, forKey: revealed.owner) == nil else { throw SecAggError(.duplicate, "two seed shares of \(revealed.owner)") }
            }
        }
        return UnmaskResponse(id: edgeID, round: round, seedShares: seeds, keyShares: keys)
    }

    /// The wire form of `response` (the session is filled in by the sender).
    public init(_ response: UnmaskResponse) {
        self.init()
        edgeID = response.id
        round = response.round
        let seeds = response.seedShares.sorted { $0.key < $1.key }.map { owner, share in
            Flock_V1_RevealedShare.with { $0.owner = owner; $0.maskingKey = false; $0.share = Data(share.bytes) }
        }
        let keys = response.keyShares.sorted { $0.key < $1.key }.map { owner, share in
            Flock_V1_RevealedShare.with { $0.owner = owner; $0.maskingKey = true; $0.share = Data(share.bytes) }
        }
        shares = seeds + keys
    }
}

extension Flock_V1_SecureAggregation {
    /// The protocol parameters of `round` this plan section describes, for masked vectors of `vectorLength`
    /// words (the round codec's encoding, its weight word included).
    /// - Throws: ``SecAggError/Kind/malformed`` for a section that is not enabled or out of range.
    public func configuration(round: UInt64, vectorLength: Int) throws(SecAggError) -> SecAggConfiguration {
        guard enabled else { throw SecAggError(.malformed, "secure aggregation is not enabled in this plan") }
        guard participants.count <= 10_000, participants.allSatisfy(WireLimits.isValidEdgeId) else {
            throw SecAggError(.malformed, "a plan lists at most 10,000 valid edge ids")
        }
        let configuration = SecAggConfiguration(
            round: round, participants: participants, neighbourCount: Int(neighbours), threshold: Int(threshold),
            vectorLength: vectorLength, graphSeed: graphSeed)
        try configuration.validate()
        return configuration
    }
}

import FlockCrypto

/// Phase 1, edge to server: the edge's two public keys for this round.
public struct KeyAdvertisement: Sendable, Codable, Equatable {
    /// The edge.
    public var id: String
    /// The round.
    public var round: UInt64
    /// Key that encrypts the shares sent to this edge.
    public var encryptionKey: X25519.PublicKey
    /// Key of the pairwise masks.
    public var maskingKey: X25519.PublicKey

    /// Creates the message.
    public init(id: String, round: UInt64, encryptionKey: X25519.PublicKey, maskingKey: X25519.PublicKey) {
        self.id = id
        self.round = round
        self.encryptionKey = encryptionKey
        self.maskingKey = maskingKey
    }
}

/// Phase 2, edge to edge through the server: shares of the sender's masking key and self-mask seed,
/// sealed for the recipient (XChaCha20-Poly1305, bound to round, sender and recipient).
public struct EncryptedShare: Sendable, Codable, Equatable {
    /// Sender.
    public var from: String
    /// Recipient.
    public var to: String
    /// The round.
    public var round: UInt64
    /// The sealed pair of shares.
    public var box: [UInt8]

    /// Creates the message.
    public init(from: String, to: String, round: UInt64, box: [UInt8]) {
        self.from = from
        self.to = to
        self.round = round
        self.box = box
    }
}

/// Phase 3, edge to server: the input plus the self mask and the pairwise masks, modulo 2^32.
public struct MaskedInput: Sendable, Codable, Equatable {
    /// The edge.
    public var id: String
    /// The round.
    public var round: UInt64
    /// The masked words.
    public var words: [UInt32]

    /// Creates the message.
    public init(id: String, round: UInt64, words: [UInt32]) {
        self.id = id
        self.round = round
        self.words = words
    }
}

/// Phase 4, server to edge: which of its neighbours sent a masked input and which dropped after sharing.
public struct UnmaskRequest: Sendable, Codable, Equatable {
    /// The round.
    public var round: UInt64
    /// Edges whose self-mask seed shares are asked for.
    public var survivors: [String]
    /// Edges whose masking-key shares are asked for.
    public var dropped: [String]

    /// Creates the message.
    public init(round: UInt64, survivors: [String], dropped: [String]) {
        self.round = round
        self.survivors = survivors
        self.dropped = dropped
    }
}

/// Phase 4, edge to server: the shares asked for.
public struct UnmaskResponse: Sendable, Codable, Equatable {
    /// The edge answering.
    public var id: String
    /// The round.
    public var round: UInt64
    /// Shares of survivors' self-mask seeds, by owner.
    public var seedShares: [String: Shamir.Share]
    /// Shares of dropped edges' masking keys, by owner.
    public var keyShares: [String: Shamir.Share]

    /// Creates the message.
    public init(id: String, round: UInt64, seedShares: [String: Shamir.Share], keyShares: [String: Shamir.Share]) {
        self.id = id
        self.round = round
        self.seedShares = seedShares
        self.keyShares = keyShares
    }
}

import FlockCore
import Foundation

/// How a client (an edge, `flock-server admin`) secures its connection to the server: whom it trusts to be the
/// server, and optionally which certificate it presents itself (mutual TLS with an enrolled device's certificate).
///
/// Build one with ``resolve(tls:ca:serverFingerprint:insecure:server:)`` from the command line's options, then give
/// it to ``ServerAddress/clientTransport(config:tls:)``.
public struct ClientTLS: Sendable, Equatable {
    /// Whom the client trusts to be the server.
    public enum Trust: Sendable, Equatable {
        /// A server certificate issued by the CA in this PEM file (`--ca FILE`) and valid for the host dialled.
        case certificateAuthority(path: String)
        /// Exactly the server certificate with this SHA-256 (of its DER encoding, lowercase hex;
        /// `--server-fingerprint`), whoever issued it and whatever host it names.
        case pinnedCertificate(sha256: String)
    }

    /// The certificate and key this client presents (mutual TLS), as PEM files or PEM text.
    public struct Identity: Sendable, Equatable {
        /// The certificate (PEM; the client's certificate first).
        public var certificatePEM: String
        /// Its private key (PEM).
        public var privateKeyPEM: String

        /// An identity from PEM text.
        public init(certificatePEM: String, privateKeyPEM: String) {
            self.certificatePEM = certificatePEM
            self.privateKeyPEM = privateKeyPEM
        }

        /// An identity read from two PEM files.
        /// - Throws: ``CoreError`` naming a file that cannot be read.
        public init(certificateFile: String, keyFile: String) throws(CoreError) {
            self.init(
                certificatePEM: String(decoding: try FileIO.read(certificateFile), as: UTF8.self),
                privateKeyPEM: String(decoding: try FileIO.read(keyFile), as: UTF8.self))
        }
    }

    /// Whom the client trusts.
    public var trust: Trust
    /// What the client presents; nil: no client certificate.
    public var identity: Identity?

    /// A TLS setting.
    public init(trust: Trust, identity: Identity? = nil) {
        self.trust = trust
        self.identity = identity
    }

    /// This setting presenting `identity`.
    public func presenting(_ identity: Identity?) -> ClientTLS {
        ClientTLS(trust: trust, identity: identity)
    }

    /// The client's transport security from its options.
    ///
    /// - Parameters:
    ///   - tls: false for `--tls off`.
    ///   - ca: `--ca FILE`.
    ///   - serverFingerprint: `--server-fingerprint SHA256HEX` (colons and case are ignored).
    ///   - insecure: `--insecure`, which allows plaintext beyond loopback.
    ///   - server: the address dialled.
    /// - Returns: nil for plaintext.
    /// - Throws: ``CoreError/Code/invalidArgument`` with what to give: TLS without `--ca` or a fingerprint, both
    ///   at once, a malformed fingerprint, `--ca` with `--tls off`, or plaintext beyond loopback without `--insecure`.
    public static func resolve(
        tls: Bool, ca: String?, serverFingerprint: String?, insecure: Bool, server: ServerAddress
    ) throws(CoreError) -> ClientTLS? {
        guard tls else {
            if ca != nil || serverFingerprint != nil {
                throw CoreError(.invalidArgument, "--ca and --server-fingerprint need TLS; drop them, or drop --tls off")
            }
            if !server.isLoopback && !insecure {
                throw CoreError(
                    .invalidArgument,
                    "--tls off to \(server) would send everything (updates, tokens) in the clear across the network; give the server's CA with --ca, or add --insecure if you really mean it")
            }
            return nil
        }
        switch (ca, serverFingerprint) {
        case (let path?, nil):
            return ClientTLS(trust: .certificateAuthority(path: path))
        case (nil, let pin?):
            guard let normalized = normalizedFingerprint(pin) else {
                throw CoreError(
                    .invalidArgument,
                    "--server-fingerprint '\(pin)': expected the SHA-256 of the server's certificate as 64 hex digits (flock-server init and serve print it)")
            }
            return ClientTLS(trust: .pinnedCertificate(sha256: normalized))
        case (_?, _?):
            throw CoreError(.invalidArgument, "give either --ca or --server-fingerprint, not both")
        case (nil, nil):
            throw CoreError(
                .invalidArgument,
                "the connection to \(server) uses TLS: give the server's CA with --ca FILE (the server's DATA_DIR/tls/ca.pem) or pin its certificate with --server-fingerprint SHA256 (printed by flock-server init and serve); --tls off talks plaintext to a server on loopback")
        }
    }

    /// A fingerprint as 64 lowercase hex digits (colons and spaces dropped), or nil when it is not one.
    public static func normalizedFingerprint(_ text: String) -> String? {
        let hex = text.lowercased().filter { $0 != ":" && $0 != " " }
        guard hex.count == 64, hex.allSatisfy({ $0.isHexDigit }) else { return nil }
        return hex
    }
}

extension ServerAddress {
    /// True for `localhost`, `127.0.0.0/8` and `::1`.
    public var isLoopback: Bool {
        if host == "localhost" || host == "::1" || host == "0:0:0:0:0:0:0:1" { return true }
        return isIPv4 && host.hasPrefix("127.")
    }
}

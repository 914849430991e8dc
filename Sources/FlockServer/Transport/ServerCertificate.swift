import FlockCore
import Foundation
import NIOSSL
import Synchronization
import X509

/// The server's TLS certificate chain and key, read from two PEM files and read again when either file changes
/// on disk (a new inode, size or modification time), so that a rotated certificate is served without a restart.
///
/// The files are looked at, at most once a second, when a TLS handshake starts (NIOSSL's per-handshake
/// `sslContextCallback`); a pair that does not load or whose key is not the certificate's (a rotation caught
/// half-way) is ignored and the previous pair stays in use until the next look finds a good one.
public final class ServerCertificate: Sendable {
    /// The certificate file (PEM: the server's certificate first, then any intermediates).
    public let certificatePath: String
    /// The private key file (PEM).
    public let keyPath: String
    private let log: @Sendable (String) -> Void
    // Guards the loaded pair, the files' signatures and the time of the last look.
    private let state: Mutex<State>

    private struct State {
        var loaded: Loaded
        var signature: [Int]
        var lastLook: ContinuousClock.Instant
    }

    struct Loaded {
        var chain: [NIOSSLCertificate]
        var key: NIOSSLPrivateKey
        var leaf: Certificate
    }

    /// Loads the pair.
    /// - Parameter log: told when a rotated pair is loaded or a changed pair cannot be.
    /// - Throws: ``CoreError`` naming the file that is missing or unreadable, or saying the key is not the
    ///   certificate's.
    public init(certificatePath: String, keyPath: String, log: @escaping @Sendable (String) -> Void = { _ in }) throws(CoreError) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.log = log
        let signature = Self.signature(certificatePath, keyPath)
        let loaded = try Self.load(certificatePath: certificatePath, keyPath: keyPath)
        state = Mutex(State(loaded: loaded, signature: signature, lastLook: .now))
    }

    /// The certificate served now.
    public var certificate: Certificate { state.withLock { $0.loaded.leaf } }

    /// SHA-256 of the served certificate, lowercase hex (what an edge's `--server-fingerprint` pins).
    public var fingerprint: String { CertificateAuthority.fingerprint(of: certificate) }

    /// The chain and key for a handshake starting now, after a look at the files if a second has passed.
    var handshakeOverride: NIOSSLContextConfigurationOverride {
        reloadIfChanged(minimumInterval: .seconds(1))
        return state.withLock { state in
            var override = NIOSSLContextConfigurationOverride()
            override.certificateChain = state.loaded.chain.map { .certificate($0) }
            override.privateKey = .privateKey(state.loaded.key)
            return override
        }
    }

    /// The chain and key as they are now (for the TLS configuration a listener starts with).
    var current: Loaded { state.withLock { $0.loaded } }

    /// Reads the files again if they changed since the last read (and `minimumInterval` has passed since the
    /// last look).
    /// - Returns: true when a new pair was loaded.
    @discardableResult
    public func reloadIfChanged(minimumInterval: Duration = .zero) -> Bool {
        let now = ContinuousClock.now
        let due: [Int]? = state.withLock { state in
            guard now - state.lastLook >= minimumInterval else { return nil }
            state.lastLook = now
            let signature = Self.signature(certificatePath, keyPath)
            return signature == state.signature ? nil : signature
        }
        guard let signature = due else { return false }
        do {
            let loaded = try Self.load(certificatePath: certificatePath, keyPath: keyPath)
            state.withLock {
                $0.loaded = loaded
                $0.signature = signature
            }
            log("TLS certificate reloaded from \(certificatePath) (SHA-256 \(CertificateAuthority.fingerprint(of: loaded.leaf)), valid until \(loaded.leaf.notValidAfter))")
            return true
        } catch {
            // Keep serving the previous pair; look again at the next handshake after the interval.
            log("warning: \(certificatePath) or \(keyPath) changed but cannot be used yet (\(error.message)); still serving the previous certificate")
            return false
        }
    }

    /// Device, inode, size and modification time of both files (empty entries for a missing file).
    private static func signature(_ paths: String...) -> [Int] {
        paths.flatMap { path -> [Int] in
            var info = stat()
            guard stat(path, &info) == 0 else { return [-1, -1, -1, -1, -1] }
            return [Int(info.st_dev), Int(info.st_ino), Int(info.st_size), Int(info.st_mtim.tv_sec), Int(info.st_mtim.tv_nsec)]
        }
    }

    private static func load(certificatePath: String, keyPath: String) throws(CoreError) -> Loaded {
        let certificateBytes = try FileIO.read(certificatePath)
        let keyBytes = try FileIO.read(keyPath)
        let chain: [NIOSSLCertificate]
        let leaf: Certificate
        do {
            chain = try NIOSSLCertificate.fromPEMBytes(certificateBytes)
            guard let first = chain.first else { throw CoreError(.corruptFile, "no certificate") }
            leaf = try Certificate(derEncoded: try first.toDERBytes())
        } catch {
            throw CoreError(.corruptFile, "\(certificatePath) does not hold a certificate in PEM; give the server's certificate (PEM, server certificate first)")
        }
        let key: NIOSSLPrivateKey
        let x509Key: Certificate.PrivateKey
        do {
            key = try NIOSSLPrivateKey(bytes: keyBytes, format: .pem)
            x509Key = try Certificate.PrivateKey(pemEncoded: String(decoding: keyBytes, as: UTF8.self))
        } catch {
            throw CoreError(.corruptFile, "\(keyPath) does not hold a private key in PEM (P-256, P-384, RSA or Ed25519); give the certificate's key")
        }
        guard x509Key.publicKey == leaf.publicKey else {
            throw CoreError(.invalidData, "\(keyPath) is not the key of the certificate in \(certificatePath); give the pair that belongs together")
        }
        return Loaded(chain: chain, key: key, leaf: leaf)
    }
}

import Crypto
import FlockCore
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import NIOCore
import NIOSSL
import SwiftASN1
import Synchronization
import X509

/// The client transport to a Flock server (HTTP/2 over TCP, plaintext or TLS), made by
/// ``ServerAddress/clientTransport(config:tls:)``.
///
/// Under TLS it checks the server's certificate itself (swift-certificates' RFC 5280 verifier with the CA as the
/// only root and the dialled host or IP as the identity, or the pinned fingerprint), so that a refused certificate
/// fails the call with a message that says what is wrong and what to do (the server's certificate expired, was
/// issued by another CA, is self-signed, names other hosts, is not the pinned one) instead of NIOSSL's
/// `handshakeFailed`.
public struct ServerClientTransport: ClientTransport {
    public typealias Bytes = HTTP2ClientTransport.Posix.Bytes

    private let base: HTTP2ClientTransport.Posix
    private let refusals: TLSRefusals
    private let server: ServerAddress
    private let usesTLS: Bool

    init(base: HTTP2ClientTransport.Posix, refusals: TLSRefusals, server: ServerAddress, usesTLS: Bool) {
        self.base = base
        self.refusals = refusals
        self.server = server
        self.usesTLS = usesTLS
    }

    public var retryThrottle: RetryThrottle? { base.retryThrottle }

    public func connect() async throws { try await base.connect() }

    public func beginGracefulShutdown() { base.beginGracefulShutdown() }

    public func config(forMethod descriptor: MethodDescriptor) -> MethodConfig? { base.config(forMethod: descriptor) }

    public func withStream<T: Sendable>(
        descriptor: MethodDescriptor, options: CallOptions,
        _ closure: (RPCStream<Inbound, Outbound>, ClientContext) async throws -> T
    ) async throws -> T {
        do {
            return try await base.withStream(descriptor: descriptor, options: options, closure)
        } catch let error as RPCError where error.code == .unavailable {
            throw explained(error)
        }
    }

    /// The error with the reason TLS refused the server or the server refused this client, when that is why.
    private func explained(_ error: RPCError) -> RPCError {
        if let message = refusals.last {
            return RPCError(code: .unavailable, message: message, cause: error)
        }
        guard usesTLS else { return error }
        let text = String(reflecting: error).uppercased()
        if text.contains("WRONG_VERSION_NUMBER") || text.contains("HTTP_REQUEST") {
            return RPCError(
                code: .unavailable,
                message: "\(server) does not speak TLS (a server started with --tls off?): give --tls off for a plaintext server on loopback, or run the server with TLS (the default)",
                cause: error)
        }
        if text.contains("CERTIFICATE_REQUIRED") || text.contains("SSLV3_ALERT_BAD_CERTIFICATE")
            || text.contains("TLSV1_ALERT_UNKNOWN_CA") || text.contains("SSLV3_ALERT_CERTIFICATE_UNKNOWN")
        {
            return RPCError(
                code: .unavailable,
                message: "\(server) refused this client's certificate (not issued by the server's CA, expired or revoked): enrol the device again (flock-edge enrol)",
                cause: error)
        }
        return error
    }
}

/// The last reason this transport's certificate check refused the server (cleared when a check passes).
final class TLSRefusals: Sendable {
    // Guards the message; written by the TLS handshake on an event loop, read by a failing call.
    private let message = Mutex<String?>(nil)

    var last: String? { message.withLock { $0 } }

    func record(_ reason: String?) { message.withLock { $0 = reason } }
}

extension ServerAddress {
    /// A client transport to this address (IP literals as such, other names through DNS): plaintext when `tls` is
    /// nil, else TLS that trusts what `tls` says and presents its identity, if any.
    /// - Throws: ``CoreError/Code/invalidArgument`` when no resolver accepts the address, a file of `tls` cannot be
    ///   read (`--ca` names no PEM certificate, the client key is not PEM).
    public func clientTransport(
        config: HTTP2ClientTransport.Posix.Config = .defaults, tls: ClientTLS? = nil
    ) throws(CoreError) -> ServerClientTransport {
        let target: any ResolvableTarget
        if isIPv4 {
            target = .ipv4(address: host, port: port)
        } else if isIPv6 {
            target = .ipv6(address: host, port: port)
        } else {
            target = .dns(host: host, port: port)
        }
        let refusals = TLSRefusals()
        let security: HTTP2ClientTransport.Posix.TransportSecurity
        if let tls {
            security = .tls(try ServerCertificateCheck(trust: tls.trust, server: self, refusals: refusals).configuration(presenting: tls.identity))
        } else {
            security = .plaintext
        }
        do {
            let base = try HTTP2ClientTransport.Posix(target: target, transportSecurity: security, config: config)
            return ServerClientTransport(base: base, refusals: refusals, server: self, usesTLS: tls != nil)
        } catch {
            throw CoreError(.invalidArgument, "server \(self): \(error)")
        }
    }
}

/// Checks the certificate a server presents against the client's ``ClientTLS/Trust``.
struct ServerCertificateCheck: Sendable {
    let trust: ClientTLS.Trust
    let server: ServerAddress
    let refusals: TLSRefusals
    /// The CA certificates of `--ca` (empty when pinning).
    let authorities: [Certificate]

    init(trust: ClientTLS.Trust, server: ServerAddress, refusals: TLSRefusals) throws(CoreError) {
        self.trust = trust
        self.server = server
        self.refusals = refusals
        switch trust {
        case .certificateAuthority(let path):
            let text = String(decoding: try FileIO.read(path), as: UTF8.self)
            let documents = (try? PEMDocument.parseMultiple(pemString: text)) ?? []
            let certificates = documents.compactMap { try? Certificate(pemDocument: $0) }
            guard !certificates.isEmpty else {
                throw CoreError(.invalidArgument, "--ca \(path): no PEM certificate in it; give the server's CA certificate (the server's DATA_DIR/tls/ca.pem)")
            }
            authorities = certificates
        case .pinnedCertificate:
            authorities = []
        }
    }

    /// grpc's TLS configuration: certificates verified by ``verify(_:now:)`` (no hostname check by NIOSSL: the
    /// check does it, naming the certificate's hosts when they differ).
    func configuration(presenting identity: ClientTLS.Identity?) throws(CoreError) -> HTTP2ClientTransport.Posix.TransportSecurity.TLS {
        var configuration = HTTP2ClientTransport.Posix.TransportSecurity.TLS(
            certificateChain: [], privateKey: nil, serverCertificateVerification: .noHostnameVerification,
            trustRoots: .certificates(authorities.compactMap { try? $0.serializeAsPEM().derBytes }.map { .bytes($0, format: .der) }))
        if let identity {
            configuration.certificateChain = [.bytes(Array(identity.certificatePEM.utf8), format: .pem)]
            configuration.privateKey = .bytes(Array(identity.privateKeyPEM.utf8), format: .pem)
        }
        let check = self
        configuration.customVerificationCallback = { certificates, promise in
            promise.completeWithTask {
                let reason = await check.verify(certificates, now: Date())
                check.refusals.record(reason)
                return reason == nil ? .certificateVerified(VerificationMetadata(nil)) : .failed
            }
        }
        return configuration
    }

    /// Nil when the server's chain is acceptable, else why not and what to do.
    func verify(_ presented: [NIOSSLCertificate], now: Date) async -> String? {
        let chain = presented.compactMap { try? Certificate(derEncoded: $0.toDERBytes()) }
        guard let leaf = chain.first else { return "\(server) presented no certificate; it is not a Flock server with TLS" }
        let fingerprint = Self.fingerprint(leaf)
        let formatter = ISO8601DateFormatter()
        if leaf.notValidAfter < now {
            return "\(server)'s certificate expired on \(formatter.string(from: leaf.notValidAfter)): its operator must renew it (flock-server init --force creates a new one, or replace the server's DATA_DIR/tls/server.pem and server.key; the server picks them up without a restart)"
        }
        if leaf.notValidBefore > now {
            return "\(server)'s certificate is valid only from \(formatter.string(from: leaf.notValidBefore)): check this machine's clock and the server's"
        }
        switch trust {
        case .pinnedCertificate(let pin):
            guard fingerprint == pin else {
                return "\(server)'s certificate has SHA-256 \(fingerprint), not the pinned \(pin): if its operator rotated the certificate, pin the new fingerprint (printed by flock-server serve and init), or trust its CA with --ca instead of a pin"
            }
            return nil
        case .certificateAuthority(let path):
            var verifier = Verifier(rootCertificates: CertificateStore(authorities)) {
                RFC5280Policy(validationTime: now)
                ServerIdentityPolicy(serverHostname: server.isIPv4 || server.isIPv6 ? nil : server.host, serverIP: server.isIPv4 || server.isIPv6 ? server.host : nil)
            }
            if case .validCertificate = await verifier.validate(leaf: leaf, intermediates: CertificateStore(chain.dropFirst())) {
                return nil
            }
            // Why not: the issuer first, then the names.
            var issuerOnly = Verifier(rootCertificates: CertificateStore(authorities)) { RFC5280Policy(validationTime: now) }
            guard case .validCertificate = await issuerOnly.validate(leaf: leaf, intermediates: CertificateStore(chain.dropFirst())) else {
                if leaf.issuer == leaf.subject {
                    return "\(server) presents a self-signed certificate (\(leaf.subject)), not one issued by the CA in \(path): give the server's own CA with --ca (its DATA_DIR/tls/ca.pem), or, if you trust this very certificate, pin it with --server-fingerprint \(fingerprint)"
                }
                return "\(server)'s certificate was issued by \(leaf.issuer), not by the CA in \(path) (\(authorities.map { "\($0.subject)" }.joined(separator: ", "))): give the CA of this server with --ca (its DATA_DIR/tls/ca.pem), or check that --server names the right server"
            }
            let names = CertificateDetails.hostNames(of: leaf)
            return "\(server)'s certificate is for \(names.isEmpty ? "no host name" : names.joined(separator: ", ")), not \(server.host): dial one of those names, or have the operator issue a certificate that names \(server.host) (flock-server init --host \(server.host) --force)"
        }
    }

    /// SHA-256 of a certificate's DER encoding, lowercase hex.
    static func fingerprint(_ certificate: Certificate) -> String { CertificateDetails.sha256(of: certificate) }
}

/// What clients and servers show of a certificate.
public enum CertificateDetails {
    /// SHA-256 of a certificate's DER encoding, lowercase hex (what `--server-fingerprint` pins).
    public static func sha256(of certificate: Certificate) -> String {
        var serializer = DER.Serializer()
        // A parsed or issued certificate always serialises.
        try! serializer.serialize(certificate)
        return Crypto.SHA256.hash(data: serializer.serializedBytes).map { String(format: "%02x", $0) }.joined()
    }

    /// The DNS names and IP addresses a certificate is valid for (its subject alternative names).
    public static func hostNames(of certificate: Certificate) -> [String] {
        guard let names = try? certificate.extensions.subjectAlternativeNames else { return [] }
        return names.compactMap { name in
            switch name {
            case .dnsName(let dns): return dns
            case .ipAddress(let bytes): return ipText(Array(bytes.bytes))
            default: return nil
            }
        }
    }

    private static func ipText(_ raw: [UInt8]) -> String? {
        let family = raw.count == 4 ? AF_INET : raw.count == 16 ? AF_INET6 : -1
        guard family >= 0 else { return nil }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let ok = raw.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &text, socklen_t(text.count)) != nil }
        return ok ? String(cString: text) : nil
    }
}

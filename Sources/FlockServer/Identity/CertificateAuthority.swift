import Crypto
import FlockCore
import FlockWire
import Foundation
import SwiftASN1
import X509

/// The server's own certificate authority: a P-256 key and a self-signed CA certificate that sign the server's TLS
/// certificate and the edges' short-lived device certificates.
///
/// It lives in the data directory (``folderName``): `tls/ca.pem` (given to edges as `--ca`) and `tls/ca.key`
/// (mode 0600, the server's alone). A device certificate names its edge in the subject alternative name as the URI
/// `flock-edge://EDGE_ID` (and as the common name); ``edgeId(of:)`` reads it back from a peer's certificate.
public struct CertificateAuthority: Sendable {
    /// Name of the folder inside the data directory that holds the TLS files.
    public static let folderName = "tls"
    /// The CA certificate (PEM), the file edges trust.
    public static let certificateFileName = "ca.pem"
    /// The CA private key (PKCS#8 PEM, mode 0600).
    public static let keyFileName = "ca.key"
    /// The server's TLS certificate (PEM), issued by the CA.
    public static let serverCertificateFileName = "server.pem"
    /// The server's TLS private key (PKCS#8 PEM, mode 0600).
    public static let serverKeyFileName = "server.key"
    /// URI scheme of the edge id in a device certificate's subject alternative name.
    public static let edgeURIScheme = DeviceCertificateName.scheme

    /// How long a CA created by ``create(commonName:validFor:now:)`` is valid by default (ten years).
    public static let defaultValidity: TimeInterval = 10 * 365 * 86_400
    /// How long a server certificate is valid by default (one year).
    public static let defaultServerValidity: TimeInterval = 365 * 86_400
    /// Clock skew allowed between the server and its peers: certificates start this long before they are issued.
    public static let backdating: TimeInterval = 300

    /// The self-signed CA certificate.
    public let certificate: Certificate
    private let key: P256.Signing.PrivateKey

    /// A CA from its certificate and key.
    /// - Throws: ``CoreError/Code/invalidData`` when the key is not the certificate's or the certificate is not a CA.
    public init(certificate: Certificate, privateKey: P256.Signing.PrivateKey) throws(CoreError) {
        guard certificate.publicKey == Certificate.PublicKey(privateKey.publicKey) else {
            throw CoreError(.invalidData, "the CA key does not belong to the CA certificate; give the key that was created with it")
        }
        guard case .isCertificateAuthority = (try? certificate.extensions.basicConstraints) ?? .notCertificateAuthority else {
            throw CoreError(.invalidData, "the CA certificate is not a certificate authority (basic constraints); give a CA certificate")
        }
        self.certificate = certificate
        self.key = privateKey
    }

    /// Creates a new CA with a fresh P-256 key.
    /// - Parameters:
    ///   - commonName: the CA's name, shown by TLS tools.
    ///   - validFor: seconds of validity from `now`.
    ///   - now: the issue time.
    public static func create(
        commonName: String = "Flock CA", validFor: TimeInterval = defaultValidity, now: Date = Date()
    ) throws(CoreError) -> CertificateAuthority {
        let key = P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(key.publicKey)
        let certificate = try wrap("create the CA certificate") {
            let name = try DistinguishedName {
                OrganizationName("Flock")
                CommonName(commonName)
            }
            return try Certificate(
                version: .v3,
                serialNumber: Certificate.SerialNumber(),
                publicKey: publicKey,
                notValidBefore: now - backdating,
                notValidAfter: now + validFor,
                issuer: name,
                subject: name,
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                    Critical(KeyUsage(digitalSignature: true, keyCertSign: true, cRLSign: true))
                    SubjectKeyIdentifier(hash: publicKey)
                },
                issuerPrivateKey: Certificate.PrivateKey(key))
        }
        return try CertificateAuthority(certificate: certificate, privateKey: key)
    }

    // MARK: Files

    /// `DATA_DIR/tls`.
    public static func folder(inDataDirectory dataDirectory: String) -> String { dataDirectory + "/" + folderName }
    /// `DATA_DIR/tls/ca.pem`.
    public static func certificatePath(inDataDirectory dataDirectory: String) -> String {
        folder(inDataDirectory: dataDirectory) + "/" + certificateFileName
    }
    /// `DATA_DIR/tls/server.pem`.
    public static func serverCertificatePath(inDataDirectory dataDirectory: String) -> String {
        folder(inDataDirectory: dataDirectory) + "/" + serverCertificateFileName
    }
    /// `DATA_DIR/tls/server.key`.
    public static func serverKeyPath(inDataDirectory dataDirectory: String) -> String {
        folder(inDataDirectory: dataDirectory) + "/" + serverKeyFileName
    }

    /// True when `DATA_DIR/tls/ca.pem` or `ca.key` exists.
    public static func exists(inDataDirectory dataDirectory: String) -> Bool {
        let folder = folder(inDataDirectory: dataDirectory)
        return FileManager.default.fileExists(atPath: folder + "/" + certificateFileName)
            || FileManager.default.fileExists(atPath: folder + "/" + keyFileName)
    }

    /// Writes `DATA_DIR/tls/ca.pem` and `ca.key` (0600, as every file in the data directory), creating `DATA_DIR/tls`
    /// (0700). The key is written first, so that a crash between the two leaves no certificate without its key.
    /// - Throws: ``CoreError`` when the files cannot be written.
    public func write(toDataDirectory dataDirectory: String) throws(CoreError) {
        let folder = Self.folder(inDataDirectory: dataDirectory)
        _ = try FileIO.createPrivateDirectory(folder)
        try FileIO.writeAtomically(Array(key.pemRepresentation.utf8), to: folder + "/" + Self.keyFileName, permissions: 0o600)
        try FileIO.writeAtomically(
            Array(try Self.pem(certificate).utf8), to: folder + "/" + Self.certificateFileName, permissions: 0o600)
    }

    /// Loads the CA from `DATA_DIR/tls`.
    /// - Throws: ``CoreError/Code/fileNotFound`` when there is none, ``CoreError/Code/corruptFile`` when a file does
    ///   not hold a PEM certificate or P-256 key, ``CoreError/Code/invalidData`` when they do not belong together.
    public static func load(fromDataDirectory dataDirectory: String) throws(CoreError) -> CertificateAuthority {
        let folder = folder(inDataDirectory: dataDirectory)
        let certificate = try readCertificate(folder + "/" + certificateFileName)
        let keyPath = folder + "/" + keyFileName
        let keyText = String(decoding: try FileIO.read(keyPath), as: UTF8.self)
        guard let key = try? P256.Signing.PrivateKey(pemRepresentation: keyText) else {
            throw CoreError(.corruptFile, "\(keyPath) is not a P-256 private key in PEM; restore it, or create a new CA with flock-server init --force")
        }
        return try CertificateAuthority(certificate: certificate, privateKey: key)
    }

    /// Reads the first certificate of a PEM file.
    /// - Throws: ``CoreError/Code/fileNotFound``, or ``CoreError/Code/corruptFile`` naming the file.
    public static func readCertificate(_ path: String) throws(CoreError) -> Certificate {
        let text = String(decoding: try FileIO.read(path), as: UTF8.self)
        guard let certificate = try? Certificate(pemEncoded: text) else {
            throw CoreError(.corruptFile, "\(path) does not hold a certificate in PEM (-----BEGIN CERTIFICATE-----); give a PEM certificate file")
        }
        return certificate
    }

    // MARK: Issuing

    /// Issues the server's TLS certificate with a fresh P-256 key, valid for `hosts` (DNS names and IP literals)
    /// and always for `localhost`, `127.0.0.1` and `::1`.
    /// - Returns: the certificate and its key.
    /// - Throws: ``CoreError/Code/invalidArgument`` for an empty or malformed host name.
    public func issueServerCertificate(
        hosts: [String], validFor: TimeInterval = defaultServerValidity, now: Date = Date()
    ) throws(CoreError) -> (certificate: Certificate, privateKey: P256.Signing.PrivateKey) {
        var names: [GeneralName] = []
        for host in hosts + ["localhost", "127.0.0.1", "::1"] {
            let host = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
            let name: GeneralName
            if let address = Self.ipAddressBytes(host) {
                name = .ipAddress(ASN1OctetString(contentBytes: ArraySlice(address)))
            } else {
                guard !host.isEmpty, host.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." || $0 == "*" }) else {
                    throw CoreError(.invalidArgument, "host '\(host)': give a DNS name (server.example.org) or an IP address")
                }
                name = .dnsName(host.lowercased())
            }
            if !names.contains(name) { names.append(name) }
        }
        let key = P256.Signing.PrivateKey()
        let commonName = hosts.first ?? "localhost"
        let certificate = try issue(
            publicKey: Certificate.PublicKey(key.publicKey), commonName: commonName, names: names,
            usage: .serverAuth, validFor: validFor, now: now)
        return (certificate, key)
    }

    /// Issues a short-lived device certificate for the key in a PKCS#10 certificate request.
    ///
    /// The request's signature is checked (the device holds the key); its subject and extensions are ignored: the
    /// certificate names `edgeId` (common name and the URI `flock-edge://EDGE_ID`), may sign (key usage
    /// digitalSignature) and authenticate a TLS client (extended key usage clientAuth), nothing else.
    /// - Parameters:
    ///   - request: the device's certificate request.
    ///   - edgeId: the edge's id (1-128 characters of letters, digits, `-`, `_`, `.`).
    ///   - validFor: how long the certificate is valid from `now`.
    ///   - now: the issue time.
    /// - Throws: ``CoreError/Code/invalidArgument`` when the request's signature does not verify or the edge id is
    ///   not one a certificate can carry.
    public func issueDeviceCertificate(
        for request: CertificateSigningRequest, edgeId: String, validFor: Duration, now: Date = Date()
    ) throws(CoreError) -> Certificate {
        guard request.publicKey.isValidSignature(request.signature, for: request) else {
            throw CoreError(.invalidArgument, "the certificate request's signature does not verify; the device must sign its request with its own key")
        }
        guard (1...128).contains(edgeId.count),
            edgeId.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "-_.".unicodeScalars.contains($0)) })
        else {
            throw CoreError(.invalidArgument, "edge id '\(edgeId)': use 1-128 letters, digits, '-', '_' or '.'")
        }
        let seconds = TimeInterval(validFor.components.seconds) + TimeInterval(validFor.components.attoseconds) / 1e18
        guard seconds > 0 else { throw CoreError(.invalidArgument, "a device certificate must be valid for a positive duration") }
        return try issue(
            publicKey: request.publicKey, commonName: edgeId,
            names: [DeviceCertificateName.name(for: edgeId)],
            usage: .clientAuth, validFor: seconds, now: now)
    }

    /// The edge id a device certificate carries (its `flock-edge://` subject alternative name), or nil when it
    /// carries none (a server, admin or foreign certificate).
    public static func edgeId(of certificate: Certificate) -> String? { DeviceCertificateName.edgeId(of: certificate) }

    // MARK: Fingerprints and PEM

    /// SHA-256 of the CA certificate's DER encoding, lowercase hex.
    public var fingerprint: String { Self.fingerprint(of: certificate) }

    /// SHA-256 of a certificate's DER encoding, lowercase hex (what `--server-fingerprint` pins).
    public static func fingerprint(of certificate: Certificate) -> String { CertificateDetails.sha256(of: certificate) }

    /// A certificate in PEM.
    public static func pem(_ certificate: Certificate) throws(CoreError) -> String {
        try wrap("encode the certificate") { try certificate.serializeAsPEM().pemString + "\n" }
    }

    // MARK: Private

    private func issue(
        publicKey: Certificate.PublicKey, commonName: String, names: [GeneralName],
        usage: ExtendedKeyUsage.Usage, validFor: TimeInterval, now: Date
    ) throws(CoreError) -> Certificate {
        let notValidAfter = min(now + validFor, certificate.notValidAfter)
        let issuerKeyId = (try? certificate.extensions.subjectKeyIdentifier)?.keyIdentifier
        return try Self.wrap("issue a certificate") {
            try Certificate(
                version: .v3,
                serialNumber: Certificate.SerialNumber(),
                publicKey: publicKey,
                notValidBefore: now - Self.backdating,
                notValidAfter: notValidAfter,
                issuer: certificate.subject,
                subject: try DistinguishedName {
                    OrganizationName("Flock")
                    CommonName(commonName)
                },
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.notCertificateAuthority)
                    Critical(KeyUsage(digitalSignature: true))
                    try ExtendedKeyUsage([usage])
                    SubjectAlternativeNames(names)
                    SubjectKeyIdentifier(hash: publicKey)
                    AuthorityKeyIdentifier(keyIdentifier: issuerKeyId)
                },
                issuerPrivateKey: Certificate.PrivateKey(key))
        }
    }

    /// The 4 or 16 bytes of an IP literal, or nil for a name.
    static func ipAddressBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    private static func wrap<T>(_ what: String, _ body: () throws -> T) throws(CoreError) -> T {
        do { return try body() } catch { throw CoreError(.invalidData, "could not \(what): \(error)") }
    }
}

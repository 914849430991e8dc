import X509

/// How a device certificate names its edge: the URI `flock-edge://EDGE_ID` in its subject alternative name.
/// The server's CA writes it; the server's identity check and the edge read it.
public enum DeviceCertificateName {
    /// The URI scheme.
    public static let scheme = "flock-edge"

    /// The subject alternative name for `edgeId`.
    public static func name(for edgeId: String) -> GeneralName { .uniformResourceIdentifier("\(scheme)://\(edgeId)") }

    /// The edge id a certificate carries, or nil when it carries none (a server, admin or foreign certificate).
    public static func edgeId(of certificate: Certificate) -> String? {
        guard let names = try? certificate.extensions.subjectAlternativeNames else { return nil }
        let prefix = scheme + "://"
        for case .uniformResourceIdentifier(let uri) in names where uri.hasPrefix(prefix) {
            let id = String(uri.dropFirst(prefix.count))
            return id.isEmpty ? nil : id
        }
        return nil
    }
}

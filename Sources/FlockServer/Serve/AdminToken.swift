import FlockCore
import FlockCrypto
import Foundation

/// The server's first admin bearer token, an operator token (``AdminTokenStore`` holds it as id `admin`, beside the
/// tokens made with `admin tokens create`). On first start the server creates a random token, keeps only its
/// SHA-256 (`DATA_DIR/admin.token.sha256`) and writes the token itself to `DATA_DIR/admin.token` with mode
/// 0600 for the operator (who may move it elsewhere and delete the file: the server never reads it back).
public struct AdminToken: Sendable {
    /// Name of the operator's copy of the token.
    public static let tokenFileName = "admin.token"
    /// Name of the stored hash.
    public static let hashFileName = "admin.token.sha256"

    /// SHA-256 of the token.
    public let hash: SHA256.Digest

    /// Loads the stored hash from `folder`, creating a token (and both files) when there is none.
    /// - Returns: the token and whether it was created now.
    /// - Throws: ``CoreError`` when the files cannot be read or written, or the hash file is damaged.
    public static func loadOrCreate(inFolder folder: String) throws(CoreError) -> (token: AdminToken, created: Bool) {
        let hashPath = folder + "/" + hashFileName
        if FileManager.default.fileExists(atPath: hashPath) {
            let text = String(decoding: try FileIO.read(hashPath), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard let digest = SHA256.Digest(hex: text) else {
                throw CoreError(.corruptFile, "\(hashPath) is not a SHA-256 in hex; delete it (and \(tokenFileName)) to issue a new admin token")
            }
            return (AdminToken(hash: digest), false)
        }
        let secret = SecureRandom.token()
        let digest = SHA256.hash(Array(secret.utf8))
        // The operator's copy first: if we crash between the writes, the next start issues a new token.
        try FileIO.writeAtomically(Array((secret + "\n").utf8), to: folder + "/" + tokenFileName, permissions: 0o600)
        try FileIO.writeAtomically(Array((digest.hex + "\n").utf8), to: hashPath, permissions: 0o600)
        return (AdminToken(hash: digest), true)
    }

    /// True when `presented` is the token (compared by hash, in constant time).
    public func accepts(_ presented: String) -> Bool {
        SHA256.hash(Array(presented.utf8)).constantTimeEquals(hash)
    }
}

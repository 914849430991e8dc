import FlockCore
import FlockCrypto
import Foundation

/// The server's Ed25519 model-signing key, kept in its data directory.
///
/// `server-signing.key` holds the 32-byte seed in hex, mode 0600; `server-signing.pub` the public key in hex,
/// which operators hand to edges (`flock-edge run --server-key`) and which `registry verify` checks against.
/// The key is made on first use and never replaced: every signature in the registry depends on it.
public enum ServerSigningKey {
    /// The secret key's file name in the data directory.
    public static let secretFileName = "server-signing.key"
    /// The public key's file name in the data directory.
    public static let publicFileName = "server-signing.pub"

    /// Loads the key pair from `dataDirectory`, creating it (and the folder) on first use.
    /// - Throws: ``RegistryError/Code/io`` when the files cannot be written or read, ``RegistryError/Code/integrity``
    ///   when the public file does not match the secret one.
    public static func loadOrCreate(dataDirectory: String) throws(RegistryError) -> Ed25519.KeyPair {
        let secretPath = dataDirectory + "/" + secretFileName
        let publicPath = dataDirectory + "/" + publicFileName
        if FileManager.default.fileExists(atPath: secretPath) {
            let pair: Ed25519.KeyPair
            do {
                let text = String(decoding: try FileIO.read(secretPath), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                guard let seed = Hex.decode(text), seed.count == 32 else {
                    throw RegistryError(.integrity, "\(secretPath): not a 32-byte hex seed; restore it from a backup (every signature depends on it)")
                }
                pair = try Ed25519.KeyPair(seed: SecretBytes(seed))
            } catch let error as RegistryError {
                throw error
            } catch {
                throw RegistryError(.io, "\(secretPath): cannot read the signing key", cause: error)
            }
            if let published = try? publicKey(dataDirectory: dataDirectory), published != pair.publicKey {
                throw RegistryError(.integrity, "\(publicPath) does not match \(secretPath); remove the .pub file to have it written again")
            }
            if !FileManager.default.fileExists(atPath: publicPath) { try writePublic(pair.publicKey, to: publicPath) }
            return pair
        }
        do { try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true) } catch {
            throw RegistryError(.io, "\(dataDirectory): cannot create the data directory", cause: error)
        }
        let pair = Ed25519.KeyPair.generate()
        do { try FileIO.writeAtomically(Array((Hex.encode(pair.seed.bytes) + "\n").utf8), to: secretPath, permissions: 0o600) } catch {
            throw RegistryError(.io, error.message)
        }
        try writePublic(pair.publicKey, to: publicPath)
        return pair
    }

    /// Reads the public key from `dataDirectory`'s `server-signing.pub`.
    /// - Throws: ``RegistryError/Code/notFound`` when the file is missing, ``RegistryError/Code/integrity`` when
    ///   it is not a 32-byte hex key.
    public static func publicKey(dataDirectory: String) throws(RegistryError) -> Ed25519.PublicKey {
        let path = dataDirectory + "/" + publicFileName
        guard FileManager.default.fileExists(atPath: path) else {
            throw RegistryError(.notFound, "\(path) is missing: the server writes it on first start")
        }
        do { return try parsePublicKey(String(decoding: try FileIO.read(path), as: UTF8.self)) } catch let error as RegistryError {
            throw RegistryError(.integrity, "\(path): \(error.message)")
        } catch {
            throw RegistryError(.io, "\(path): cannot read", cause: error)
        }
    }

    /// Parses a public key written as 64 hex digits (surrounding white space ignored).
    /// - Throws: ``RegistryError/Code/invalidArgument`` for anything else.
    public static func parsePublicKey(_ text: String) throws(RegistryError) -> Ed25519.PublicKey {
        guard let bytes = Hex.decode(text.trimmingCharacters(in: .whitespacesAndNewlines)),
              let key = try? Ed25519.PublicKey(bytes: bytes) else {
            throw RegistryError(.invalidArgument, "not an Ed25519 public key (64 hex digits)")
        }
        return key
    }

    private static func writePublic(_ key: Ed25519.PublicKey, to path: String) throws(RegistryError) {
        do { try FileIO.writeAtomically(Array((Hex.encode(key.bytes) + "\n").utf8), to: path) } catch {
            throw RegistryError(.io, error.message)
        }
    }
}

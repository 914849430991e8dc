import FlockCore
import FlockCrypto
import FlockWire
import Foundation

/// The state folder of one `flock-edge run` process (`--state-dir`), claimed for the process's whole life.
///
/// The folder holds the generated edge id, so two edges started on one folder would register under one id
/// and take each other's session over and over. Claiming the folder (an exclusive lock, see
/// ``DirectoryLock``) makes the second one stop at once with a message that says to give each edge its own
/// folder. The operating system releases the claim when the process ends, however it ends.
public final class StateFolder: Sendable {
    /// The folder.
    public let path: String
    private let lock: DirectoryLock

    /// Creates the folder if needed (mode 0700: it holds the edge's id, its cached models and its error feedback),
    /// and claims it.
    /// - Throws: ``CoreError/Code/locked`` when another process holds the folder (the message names the folder,
    ///   the holder's process id and `--state-dir`); ``CoreError/Code/io`` when it cannot be created or locked.
    public init(path: String) throws(CoreError) {
        self.path = path
        try FileIO.createPrivateDirectory(path)
        do {
            lock = try DirectoryLock(directory: path)
        } catch where error.code == .locked {
            let holder = Self.holder(lockFile: path + "/.lock").map { "another flock-edge (pid \($0))" } ?? "another flock-edge"
            throw CoreError(
                .locked,
                "the state folder \(path) is in use by \(holder). Every edge needs its own state folder (it holds the edge's id): "
                    + "start this one with --state-dir DIR naming another folder, or stop the other first")
        }
    }

    /// Whether this process still holds the folder.
    public var isHeld: Bool { lock.isHeld }

    /// The edge's id kept in the folder (`edge.id`), generated and stored on first use.
    /// - Throws: ``CoreError/Code/io`` when it cannot be stored.
    public func edgeId() throws(CoreError) -> String {
        let file = path + "/edge.id"
        if let bytes = try? FileIO.read(file) {
            let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if WireLimits.isValidEdgeId(text) { return text }
        }
        let fresh = "edge-" + SecureRandom.token(byteCount: 4)
        try FileIO.writeAtomically(Array((fresh + "\n").utf8), to: file)
        return fresh
    }

    /// The process id the holder wrote into the lock file, if any.
    private static func holder(lockFile: String) -> Int32? {
        guard let bytes = try? FileIO.read(lockFile) else { return nil }
        return Int32(String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}

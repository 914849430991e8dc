import FlockCore
import Foundation
import GRDB

extension RegistryReader {
    /// One thing `registry verify` found wrong.
    public struct Problem: Sendable, Codable, Equatable, CustomStringConvertible {
        /// The version concerned, if any.
        public var version: Int64?
        /// What is wrong, for the operator.
        public var message: String

        public var description: String { (version.map { "version \($0): " } ?? "") + message }
    }

    /// Re-hashes every artifact, checks every version's signature against `server-signing.pub`, and runs
    /// SQLite's integrity and foreign-key checks.
    /// - Returns: every problem found (empty when all is well) and the number of artifacts checked.
    public func verify() throws(RegistryError) -> (problems: [Problem], checked: Int) {
        var problems: [Problem] = []
        let integrity = try read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
        if integrity != ["ok"] { problems += integrity.map { Problem(version: nil, message: "SQLite integrity: \($0)") } }
        let dangling = try read { db in try Row.fetchAll(db, sql: "PRAGMA foreign_key_check") }
        if !dangling.isEmpty { problems.append(Problem(version: nil, message: "\(dangling.count) rows refer to rows that do not exist")) }
        let publicKey = Result { () throws(RegistryError) in try ServerSigningKey.publicKey(dataDirectory: dataDirectory) }
        if case .failure(let error) = publicKey { problems.append(Problem(version: nil, message: "cannot check signatures: \(error.message)")) }
        let collected = Set(try read { db in try String.fetchAll(db, sql: "SELECT hash FROM artifact WHERE collected_at IS NOT NULL") })
        var checked = Set<String>()
        for v in try versions().reversed() {
            if case .success(let key) = publicKey {
                do { try checkSignature(of: v, publicKey: key) } catch { problems.append(Problem(version: v.id, message: "signature does not verify")) }
            }
            if collected.contains(v.hash) { continue }
            if checked.contains(v.hash) { continue }
            checked.insert(v.hash)
            do { _ = try artifacts.read(v.hash) } catch { problems.append(Problem(version: v.id, message: error.message)) }
        }
        return (problems, checked.count)
    }
}

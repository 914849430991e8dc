import FlockCore
import FlockCrypto
import FlockWire
import Foundation

/// What the open round has accepted, on disk, so that a server killed mid-round (kill -9 included) loses
/// nothing it acknowledged: on restart the same round reopens with the same selection and the accepted
/// updates and evaluations already in its sum.
///
/// The ``RoundCheckpoint`` covers completed rounds; this file covers the one round in between. It is
/// created (atomically) when a round opens, grows by one record per accepted input, each appended and
/// `fsync`ed before the edge is told it was accepted, and is removed once the round's checkpoint is written.
///
/// Format: a sequence of records, each `[UInt32 LE: n][n bytes of JSON][UInt32 LE: m][m Float32 LE]`
/// followed by the SHA-256 of everything before it in the record. A record that is incomplete or whose
/// digest does not match ends the journal: it is the torn tail of a write the crash interrupted, which
/// was never acknowledged.
public struct RoundJournal: Sendable {
    /// File name inside the data directory.
    public static let fileName = "open-round.journal"

    /// The round as it was opened.
    public struct Opening: Codable, Sendable, Equatable {
        /// The round's record when it opened.
        public var record: RoundRecord
        /// Selected edge ids.
        public var selected: [String]
        /// Updates that close the round.
        public var target: Int
        /// Updates the round needs to aggregate.
        public var minimumUpdates: Int
        /// The plan sent to the edges (serialized `flock.v1.RoundPlan`).
        public var plan: [UInt8]

        /// Creates an opening record.
        public init(record: RoundRecord, selected: [String], target: Int, minimumUpdates: Int, plan: [UInt8]) {
            self.record = record
            self.selected = selected
            self.target = target
            self.minimumUpdates = minimumUpdates
            self.plan = plan
        }
    }

    /// One accepted input.
    public enum Entry: Sendable, Equatable {
        /// An update: its edge, example count, upload bytes counted and values.
        case update(edge: String, examples: Int, bytes: Int, values: [Float])
        /// A federated evaluation report.
        case evaluation(edge: String, examples: Int, loss: Double, accuracy: Double)
        /// An edge's feature moments in a statistics round: its upload bytes counted and its words.
        case moments(edge: String, bytes: Int, words: [UInt32])
    }

    private struct Header: Codable {
        var kind: String
        /// The round an input belongs to (absent only in the opening, which names its round in its record).
        var round: Int?
        var opening: Opening?
        var edge: String?
        var examples: Int?
        var bytes: Int?
        var loss: Double?
        var accuracy: Double?
    }

    /// The journal's path.
    public let path: String

    /// The journal of the data directory `folder`.
    public init(folder: String) { path = folder + "/" + Self.fileName }

    /// Starts the journal of a newly opened round, replacing any previous one.
    public func begin(_ opening: Opening) throws(CoreError) {
        try FileIO.writeAtomically(Self.record(Header(kind: "open", opening: opening), values: []), to: path, permissions: 0o600)
    }

    /// Appends an accepted input of `round`; durable when this returns. Every input names its round, and
    /// ``read()`` keeps only those of the round the opening names: a journal never mixes two rounds.
    public func append(_ entry: Entry, round: Int) throws(CoreError) {
        switch entry {
        case .update(let edge, let examples, let bytes, let values):
            try FileIO.appendDurably(
                Self.record(Header(kind: "update", round: round, edge: edge, examples: examples, bytes: bytes), values: values),
                to: path, permissions: 0o600)
        case .evaluation(let edge, let examples, let loss, let accuracy):
            try FileIO.appendDurably(
                Self.record(Header(kind: "evaluation", round: round, edge: edge, examples: examples, loss: loss, accuracy: accuracy), values: []),
                to: path, permissions: 0o600)
        case .moments(let edge, let bytes, let words):
            // The words travel as the bit patterns of the record's Float32 section.
            try FileIO.appendDurably(
                Self.record(Header(kind: "moments", round: round, edge: edge, examples: 0, bytes: bytes), values: words.map { Float(bitPattern: $0) }),
                to: path, permissions: 0o600)
        }
    }

    /// Removes the journal (the round it held is in the checkpoint now).
    public func remove() {
        _ = unlink(path)
    }

    /// Reads the journal.
    /// - Returns: nil when there is none; else the opening and the entries of its round up to the first torn
    ///   record (an input that names another round is not this round's and is left out).
    /// - Throws: ``CoreError`` when the file cannot be read or its first record (the opening) is damaged.
    public func read() throws(CoreError) -> (opening: Opening, entries: [Entry])? {
        let bytes: [UInt8]
        do { bytes = try FileIO.read(path) } catch where error.code == .fileNotFound { return nil }
        var offset = 0
        var opening: Opening?
        var entries = [Entry]()
        while let (header, values, next) = Self.nextRecord(bytes, at: offset) {
            offset = next
            if opening == nil {
                guard header.kind == "open", let o = header.opening else { break }
                opening = o
                continue
            }
            if let round = header.round, round != opening?.record.round { continue }
            switch (header.kind, header.edge, header.examples) {
            case ("update", let edge?, let examples?):
                entries.append(.update(edge: edge, examples: examples, bytes: header.bytes ?? 0, values: values))
            case ("evaluation", let edge?, let examples?):
                entries.append(.evaluation(edge: edge, examples: examples, loss: header.loss ?? .nan, accuracy: header.accuracy ?? .nan))
            case ("moments", let edge?, _):
                entries.append(.moments(edge: edge, bytes: header.bytes ?? 0, words: values.map(\.bitPattern)))
            default:
                throw CoreError(.corruptFile, "\(path): unknown record '\(header.kind)'; remove the file to drop the open round")
            }
        }
        guard let opening else {
            throw CoreError(.corruptFile, "\(path): the open round's first record is damaged; remove the file to drop the open round")
        }
        return (opening, entries)
    }

    private static func record(_ header: Header, values: [Float]) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = [UInt8]((try? encoder.encode(header)) ?? Data())
        var bytes = [UInt8]()
        bytes.reserveCapacity(json.count + values.count * 4 + 40)
        appendLength(json.count, to: &bytes)
        bytes += json
        appendLength(values.count, to: &bytes)
        bytes += LittleEndianFloats.encode(values)
        let digest = SHA256.hash(bytes)
        bytes += digest.bytes
        return bytes
    }

    private static func appendLength(_ n: Int, to bytes: inout [UInt8]) {
        let v = UInt32(n)
        bytes += [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24)]
    }

    private static func length(_ bytes: [UInt8], at offset: Int) -> Int? {
        guard offset + 4 <= bytes.count else { return nil }
        return Int(bytes[offset]) | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2]) << 16 | Int(bytes[offset + 3]) << 24
    }

    /// The record at `offset` and where the next begins, or nil for the end or a torn record.
    private static func nextRecord(_ bytes: [UInt8], at offset: Int) -> (Header, [Float], Int)? {
        guard let jsonCount = length(bytes, at: offset) else { return nil }
        let jsonStart = offset + 4
        guard let valueCount = length(bytes, at: jsonStart + jsonCount) else { return nil }
        let valuesStart = jsonStart + jsonCount + 4
        let digestStart = valuesStart + valueCount * 4
        guard digestStart + 32 <= bytes.count else { return nil }
        let digest = SHA256.hash(bytes[offset..<digestStart])
        guard digest.bytes == Array(bytes[digestStart..<digestStart + 32]),
              let header = try? JSONDecoder().decode(Header.self, from: Data(bytes[jsonStart..<jsonStart + jsonCount]))
        else { return nil }
        let values = LittleEndianFloats.decode(Array(bytes[valuesStart..<digestStart]))
        return (header, values, digestStart + 32)
    }
}

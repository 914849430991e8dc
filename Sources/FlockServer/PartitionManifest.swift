import FlockCore
import Foundation

/// What ``PartitionWriter`` wrote: the scheme, seed and client count, and per client its file, row count and
/// rows per class. Stored as `manifest.json` beside the client files.
///
/// JSON form (sorted keys):
///
///     {"classes": 10, "clients": 20, "partitions": [{"client": 0, "file": "client-0.csv", "label_counts":
///      [0, 200, 0, ...], "rows": 200}, ...], "rows": 4000, "scheme": "shards", "seed": 0,
///      "source": "data/mnist5k-train.csv"}
///
/// `label_counts` has one entry per class of the whole data set (`classes` entries); `file` is relative to the
/// manifest's folder.
public struct PartitionManifest: Sendable, Codable, Equatable {
    /// One client's share.
    public struct Partition: Sendable, Codable, Equatable {
        /// Client index, from 0.
        public var client: Int
        /// The client's CSV, relative to the manifest's folder.
        public var file: String
        /// Rows in the file.
        public var rows: Int
        /// Rows per class, indexed by class.
        public var labelCounts: [Int]

        /// Creates a partition entry.
        public init(client: Int, file: String, rows: Int, labelCounts: [Int]) {
            self.client = client
            self.file = file
            self.rows = rows
            self.labelCounts = labelCounts
        }

        /// The number of classes with at least one row.
        public var classesPresent: Int { labelCounts.filter { $0 > 0 }.count }

        /// The largest class's fraction of the rows, in 0...1; `nil` for an empty partition.
        public var largestClassShare: Double? {
            guard rows > 0 else { return nil }
            return Double(labelCounts.max() ?? 0) / Double(rows)
        }

        enum CodingKeys: String, CodingKey {
            case client, file, rows
            case labelCounts = "label_counts"
        }
    }

    /// The file name of the manifest inside the output folder.
    public static let fileName = "manifest.json"

    /// The scheme's text form (`iid`, `shards`, `dirichlet:ALPHA`).
    public var scheme: String
    /// The seed of every random choice of the split.
    public var seed: UInt64
    /// The number of clients (and of partitions).
    public var clients: Int
    /// The number of classes counted in `label_counts`.
    public var classes: Int
    /// Rows in the whole data set.
    public var rows: Int
    /// The data set that was split, as given.
    public var source: String
    /// One entry per client, in client order.
    public var partitions: [Partition]

    /// Creates a manifest.
    public init(
        scheme: String,
        seed: UInt64,
        clients: Int,
        classes: Int,
        rows: Int,
        source: String,
        partitions: [Partition]
    ) {
        self.scheme = scheme
        self.seed = seed
        self.clients = clients
        self.classes = classes
        self.rows = rows
        self.source = source
        self.partitions = partitions
    }

    /// Reads `manifest.json` from a folder written by ``PartitionWriter``.
    /// - Throws: ``CoreError/Code/fileNotFound`` or ``CoreError/Code/io`` when it cannot be read;
    ///   ``CoreError/Code/corruptFile`` when it is not a manifest.
    public static func read(fromFolder folder: String) throws(CoreError) -> PartitionManifest {
        let path = folder + "/" + fileName
        let bytes = try FileIO.read(path)
        do {
            return try JSONDecoder().decode(PartitionManifest.self, from: Data(bytes))
        } catch {
            throw CoreError(.corruptFile, "\(path): not a partition manifest written by flock-server data partition")
        }
    }

    /// The manifest's bytes as written: one line of JSON with sorted keys and a newline.
    public func encoded() -> [UInt8] {
        Array(JSONOutput.data(self)) + [UInt8(ascii: "\n")]
    }

    /// A table of client, rows, classes present and largest class share, then a total line, e.g.
    ///
    ///     client  rows  classes present  largest class share
    ///          0   200                2                50.0%
    ///     total 4000 rows in 20 clients (shards, seed 0)
    public func renderSummary() -> String {
        let header = ["client", "rows", "classes present", "largest class share"]
        let cells = partitions.map { part in
            [
                "\(part.client)", "\(part.rows)", "\(part.classesPresent)",
                part.largestClassShare.map { String(format: "%.1f%%", $0 * 100) } ?? "-",
            ]
        }
        let noun = clients == 1 ? "client" : "clients"
        return TextTable(header: header, rows: cells).render()
            + "\ntotal \(partitions.reduce(0) { $0 + $1.rows }) rows in \(clients) \(noun) (\(scheme), seed \(seed))"
    }
}

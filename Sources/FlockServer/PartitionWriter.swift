import FlockCore
import Foundation

/// Splits a data set among simulated clients and writes one CSV per client plus a manifest, for federated
/// experiments: `flock-server data partition`.
///
/// The folder receives `client-0.csv`, `client-1.csv`, ... (header-less CSV, label first, rows in their
/// original order) and then ``PartitionManifest/fileName``, each written atomically; the manifest comes last, so
/// a folder with a manifest holds a complete split. The same data, scheme, client count and seed always give
/// byte-identical files.
public struct PartitionWriter: Sendable {
    /// How rows are dealt to clients.
    public var scheme: PartitionScheme
    /// The number of clients.
    public var clients: Int
    /// The seed of every random choice.
    public var seed: UInt64

    /// Creates a writer.
    public init(scheme: PartitionScheme, clients: Int, seed: UInt64 = 0) {
        self.scheme = scheme
        self.clients = clients
        self.seed = seed
    }

    /// The file name of client `index`'s CSV.
    public static func fileName(client index: Int) -> String { "client-\(index).csv" }

    /// Splits `data` and writes the client files and the manifest into `folder`, creating it when missing.
    ///
    /// When `folder` already holds a manifest (an earlier split), client files of that split beyond the new
    /// client count are removed, so the folder never mixes two splits. Other files are left alone.
    ///
    /// - Parameters:
    ///   - data: The rows to split; `data.source` is recorded in the manifest.
    ///   - folder: The output folder.
    /// - Returns: The manifest as written.
    /// - Throws: ``CoreError/Code/invalidArgument`` for a client count the scheme cannot serve (see
    ///   ``PartitionScheme/partition(labels:clients:seed:)``); ``CoreError/Code/io`` when the folder or a file
    ///   cannot be written.
    /// - Complexity: O(n log n) in the rows, plus writing them.
    @discardableResult
    public func write(_ data: Dataset, toFolder folder: String) throws(CoreError) -> PartitionManifest {
        let parts = try scheme.partition(labels: data.labels, clients: clients, seed: seed)
        try Self.makeFolder(folder)
        let previous = try? PartitionManifest.read(fromFolder: folder)

        let classes = data.classCount
        var partitions = [PartitionManifest.Partition]()
        for (client, rows) in parts.enumerated() {
            let file = Self.fileName(client: client)
            let subset = data.subset(rows)
            try subset.writeCSV(path: folder + "/" + file)
            let balance = ClassBalance(labels: subset.labels, classCount: classes)
            partitions.append(.init(client: client, file: file, rows: subset.count, labelCounts: balance.counts))
        }
        if let previous {
            for stale in previous.partitions
            where stale.client >= clients && stale.file == Self.fileName(client: stale.client) {
                try? FileManager.default.removeItem(atPath: folder + "/" + stale.file)
            }
        }
        let manifest = PartitionManifest(
            scheme: scheme.description,
            seed: seed,
            clients: clients,
            classes: classes,
            rows: data.count,
            source: data.source,
            partitions: partitions
        )
        try FileIO.writeAtomically(manifest.encoded(), to: folder + "/" + PartitionManifest.fileName)
        return manifest
    }

    private static func makeFolder(_ folder: String) throws(CoreError) {
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder) {
            guard isFolder.boolValue else { throw CoreError(.io, "\(folder): exists and is not a folder") }
            return
        }
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw CoreError(.io, "\(folder): cannot create the folder: \(error.localizedDescription)", cause: error)
        }
    }
}

import FlockCore
import Foundation

/// The PyTorch peer's training-benchmark numbers, read from the JSON that `scripts/peer_torch_bench.py` (and
/// `shared/peer/torch_train_bench.py`) write: `{"env": {"torch": ..., ...}, "rows": [{"threads", "model",
/// "batch", "samples_per_s", "test_acc", ...}, ...]}`.
///
/// Rows are matched to Flock's by thread count, model and batch size; the model is compared lowercased, so the
/// peer's `2NN` matches Flock's `2nn`. Keys this type does not use are ignored.
public struct PeerResults: Sendable, Equatable {
    /// One measured configuration of the peer.
    public struct Row: Sendable, Equatable, Decodable {
        /// `torch.set_num_threads` value.
        public var threads: Int
        /// The model as the peer names it (`2NN`, `CNN`).
        public var model: String
        /// Rows per mini-batch.
        public var batch: Int
        /// Training rows per second (rows over the median timed epoch).
        public var samplesPerSecond: Double
        /// Test accuracy after the last epoch, in 0...1.
        public var testAccuracy: Double
        /// Total epochs the peer trained, when recorded.
        public var epochs: Int?

        /// Creates a row.
        public init(
            threads: Int,
            model: String,
            batch: Int,
            samplesPerSecond: Double,
            testAccuracy: Double,
            epochs: Int? = nil
        ) {
            self.threads = threads
            self.model = model
            self.batch = batch
            self.samplesPerSecond = samplesPerSecond
            self.testAccuracy = testAccuracy
            self.epochs = epochs
        }

        enum CodingKeys: String, CodingKey {
            case threads, model, batch, epochs
            case samplesPerSecond = "samples_per_s"
            case testAccuracy = "test_acc"
        }
    }

    /// The PyTorch version from `env.torch`, when recorded.
    public var torchVersion: String?
    /// The measured configurations, in file order.
    public var rows: [Row]

    /// Creates results from rows.
    public init(torchVersion: String? = nil, rows: [Row]) {
        self.torchVersion = torchVersion
        self.rows = rows
    }

    /// Parses the peer's JSON.
    /// - Parameters:
    ///   - json: The file's bytes.
    ///   - source: The file name, for messages.
    /// - Throws: ``CoreError/Code/invalidData`` naming `source` and the first missing or mistyped field.
    public init(json: Data, source: String) throws(CoreError) {
        do {
            let file = try JSONDecoder().decode(File.self, from: json)
            self.init(torchVersion: file.env?.torch, rows: file.rows)
        } catch let error as DecodingError {
            throw CoreError(
                .invalidData,
                "\(source): not a PyTorch benchmark result from scripts/peer_torch_bench.py: \(Self.reason(error))"
            )
        } catch {
            throw CoreError(.invalidData, "\(source): cannot parse the PyTorch benchmark result", cause: error)
        }
    }

    /// Reads and parses the peer's JSON file.
    /// - Throws: ``CoreError/Code/fileNotFound`` or ``CoreError/Code/io`` when the file cannot be read;
    ///   ``CoreError/Code/invalidData`` when it is not the peer's format.
    public static func load(path: String) throws(CoreError) -> PeerResults {
        let bytes = try FileIO.read(path)
        return try PeerResults(json: Data(bytes), source: path)
    }

    /// The peer's row for this configuration, if it measured it (the first one when it measured it twice).
    /// - Parameter model: Compared case-insensitively.
    public func row(threads: Int, model: String, batch: Int) -> Row? {
        let model = model.lowercased()
        return rows.first { $0.threads == threads && $0.batch == batch && $0.model.lowercased() == model }
    }

    // MARK: Decoding

    private struct File: Decodable {
        struct Environment: Decodable {
            var torch: String?
        }
        var env: Environment?
        var rows: [Row]
    }

    /// A one-line reason: where in the file, and what was wrong.
    private static func reason(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context, appending key: (any CodingKey)? = nil) -> String {
            let keys = context.codingPath + (key.map { [$0] } ?? [])
            let text = keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return text.isEmpty ? "the top level" : String(text.drop { $0 == "." })
        }
        switch error {
        case .keyNotFound(let key, let context):
            return "\(path(context, appending: key)) is missing"
        case .typeMismatch(let type, let context):
            return "\(path(context)) is not \(type == String.self ? "a string" : "a \(type)")"
        case .valueNotFound(_, let context):
            return "\(path(context)) is null"
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "the file is not valid JSON" : "\(path(context)) is not valid"
        @unknown default:
            return "\(error)"
        }
    }
}

import ArgumentParser
import FlockCompression
import FlockCore
import FlockServer
import FlockWire

// Choices that are types: `--help` lists their values, and a value outside them is a usage error (exit 64)
// before anything runs. Values with parameters (a strategy's η, a codec's bits, a partition's α) are parsed by
// `transform` closures, so that a bad one is a usage error with the parser's own explanation.

/// `on` or `off`.
enum Switch: String, CaseIterable, ExpressibleByArgument {
    case on, off

    /// Whether it is `on`.
    var isOn: Bool { self == .on }
}

/// The secure-aggregation neighbour graph: SecAgg+ (k = 2 log2 n neighbours) or everyone with everyone.
enum SecureGraph: String, CaseIterable, ExpressibleByArgument {
    case secaggPlus = "secagg+"
    case complete
}

/// How `simulate` runs the federation: direct calls, or the serve and edge code over gRPC in process.
enum SimulationTransport: String, CaseIterable, ExpressibleByArgument {
    case direct, grpc
}

/// The parsers of the options whose values carry parameters.
enum ArgumentParsers {
    /// `HOST:PORT`.
    static func address(_ text: String) throws -> ServerAddress { try ServerAddress(parsing: text) }
    /// `fedavg`, `fedprox:MU`, …
    static func strategy(_ text: String) throws -> AggregationStrategy { try AggregationStrategy(parsing: text) }
    /// `iid`, `shards`, `dirichlet:ALPHA`.
    static func partition(_ text: String) throws -> PartitionScheme { try PartitionScheme(parsing: text) }
    /// An update codec.
    static func codec(_ text: String) throws -> CodecSpec { try CodecSpec(parsing: text) }
    /// A model download codec.
    static func download(_ text: String) throws -> ModelDownload { try ModelDownload(parsing: text) }
}

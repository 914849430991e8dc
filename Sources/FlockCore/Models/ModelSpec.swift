/// A versioned, Codable description of a sequential model: input shape, class count and layers.
///
/// Stored inside every model file, so a model can be rebuilt exactly. Presets:
/// - `2nn`: McMahan et al. 2017's 784-200-200-10 ReLU MLP (199,210 parameters on MNIST);
/// - `cnn`: McMahan et al. 2017's CNN (conv 5x5x32 pad 2, ReLU, maxpool 2, conv 5x5x64 pad 2, ReLU,
///   maxpool 2, dense 512, ReLU, dense 10; 1,663,370 parameters on MNIST), for square single-channel
///   images whose side is a multiple of 4;
/// - `mlp:H1,H2,...`: a ReLU MLP with those hidden widths, for any input width;
/// - `logreg`: multinomial logistic regression (one dense layer).
public struct ModelSpec: Codable, Sendable, Equatable {
    /// The current format version of specs this build writes.
    public static let currentVersion = 1

    /// Format version of this spec.
    public var version: Int
    /// The preset name it came from (`2nn`, `cnn`, `mlp:…`, `logreg`) or `custom`.
    public var name: String
    /// Per-sample input shape: `[features]` or `[channels, height, width]`.
    public var inputShape: [Int]
    /// Number of output classes.
    public var classCount: Int
    /// The layers, in order. The last layer's output width must equal ``classCount``.
    public var layers: [LayerSpec]
    /// How weights are initialized (biases are zero). `nil`: He before a ReLU, Xavier elsewhere.
    public var initScheme: InitScheme?

    /// Creates a spec from its parts; ``Model/init(spec:seed:)`` checks that it is consistent.
    public init(name: String = "custom", inputShape: [Int], classCount: Int, layers: [LayerSpec], initScheme: InitScheme? = nil) {
        version = ModelSpec.currentVersion
        self.name = name
        self.inputShape = inputShape
        self.classCount = classCount
        self.layers = layers
        self.initScheme = initScheme
    }

    /// Number of input features per sample (saturating at `Int.max` for a shape no model accepts).
    public var inputFeatures: Int { Self.product(inputShape) ?? .max }

    /// The largest value any one dimension may take: an input side, a layer's units or filters, a kernel, a
    /// stride, a padding. A spec read from a file is bounded before anything is allocated for it.
    public static let maximumDimension = 1 << 24
    /// The most values one sample may have at any point in the model (its input or any layer's output).
    public static let maximumValuesPerSample = 1 << 24
    /// The most parameters a model may have (1 GiB of Float32).
    public static let maximumParameters = 1 << 28
    /// The most layers a spec may list.
    public static let maximumLayers = 1024
    /// The most values one sample's pass may hold in all layers' outputs together (1 GiB of Float32 at a batch
    /// of 4).
    public static let maximumActivationsPerSample = 1 << 26

    /// The product of `values`, or `nil` when it overflows `Int` or a value is negative.
    static func product(_ values: [Int]) -> Int? {
        var result = 1
        for value in values {
            guard value >= 0 else { return nil }
            let (next, overflow) = result.multipliedReportingOverflow(by: value)
            if overflow { return nil }
            result = next
        }
        return result
    }

    /// The names accepted by ``preset(_:inputFeatures:classCount:)``.
    public static let presetSyntax = "2nn | cnn | mlp:H1,H2,... | logreg"

    /// Builds a named preset for data with `inputFeatures` features and `classCount` classes.
    /// - Throws: ``CoreError/Code/invalidArgument`` for an unknown name, and
    ///   ``CoreError/Code/modelMismatch`` when the data cannot fit the preset (e.g. `cnn` on non-square data).
    public static func preset(_ name: String, inputFeatures: Int, classCount: Int) throws(CoreError) -> ModelSpec {
        guard inputFeatures > 0, classCount >= 2 else {
            throw CoreError(.invalidArgument, "a model needs at least 1 feature and 2 classes (got \(inputFeatures) and \(classCount))")
        }
        let lower = name.lowercased()
        switch lower {
        case "2nn":
            return mlp(name: "2nn", inputFeatures: inputFeatures, hidden: [200, 200], classCount: classCount)
        case "logreg":
            return ModelSpec(name: "logreg", inputShape: [inputFeatures], classCount: classCount, layers: [.dense(units: classCount)])
        case "cnn":
            let side = Int(Double(inputFeatures).squareRoot().rounded())
            guard side * side == inputFeatures, side % 4 == 0 else {
                throw CoreError(
                    .modelMismatch,
                    "the cnn preset needs square single-channel images whose side is a multiple of 4 (28x28 = 784 features); the data has \(inputFeatures) features")
            }
            return ModelSpec(
                name: "cnn", inputShape: [1, side, side], classCount: classCount,
                layers: [
                    .conv2d(filters: 32, kernel: 5, stride: 1, padding: 2), .relu, .maxPool2d(size: 2, stride: 2),
                    .conv2d(filters: 64, kernel: 5, stride: 1, padding: 2), .relu, .maxPool2d(size: 2, stride: 2),
                    .flatten, .dense(units: 512), .relu, .dense(units: classCount),
                ])
        default:
            if lower.hasPrefix("mlp:") {
                let parts = lower.dropFirst(4).split(separator: ",", omittingEmptySubsequences: false)
                let widths = parts.compactMap { Int($0.filter { $0 != " " }) }
                guard !parts.isEmpty, widths.count == parts.count, widths.allSatisfy({ $0 > 0 }) else {
                    throw CoreError(.invalidArgument, "'\(name)': mlp takes positive hidden widths, e.g. mlp:128,64")
                }
                return mlp(name: lower, inputFeatures: inputFeatures, hidden: widths, classCount: classCount)
            }
            throw CoreError(.invalidArgument, "unknown model '\(name)': use \(presetSyntax)")
        }
    }

    private static func mlp(name: String, inputFeatures: Int, hidden: [Int], classCount: Int) -> ModelSpec {
        var layers = [LayerSpec]()
        for h in hidden { layers += [.dense(units: h), .relu] }
        layers.append(.dense(units: classCount))
        return ModelSpec(name: name, inputShape: [inputFeatures], classCount: classCount, layers: layers)
    }
}

/// One layer of a ``ModelSpec``.
public enum LayerSpec: Codable, Sendable, Equatable {
    /// Fully connected layer with `units` outputs (flattens its input implicitly when it is [C, H, W]).
    case dense(units: Int)
    /// 2-D convolution with `filters` square `kernel` x `kernel` filters.
    case conv2d(filters: Int, kernel: Int, stride: Int, padding: Int)
    /// Max pooling with a square `size` window.
    case maxPool2d(size: Int, stride: Int)
    /// Rectified linear unit.
    case relu
    /// [C, H, W] -> [C * H * W].
    case flatten
    /// Inverted dropout with drop probability `rate` in [0, 1).
    case dropout(rate: Double)
}

/// One layer of a sequential ``Model``: a forward pass and its exact backward pass over a mini-batch.
///
/// Layers own no parameters: ``bind(parameters:gradients:)`` points them at their slice of the model's one
/// flat parameter buffer and its gradient twin, so the whole model is a single vector that federation can
/// move, average and encode. Shapes are per sample; buffers hold `batch` samples back to back.
protocol Layer: AnyObject {
    /// The per-sample input shape.
    var inputShape: [Int] { get }
    /// The per-sample output shape.
    var outputShape: [Int] { get }
    /// Number of trainable parameters.
    var parameterCount: Int { get }
    /// Named views of this layer's parameters, relative to its slice (weight then bias).
    var parameterShapes: [(name: String, shape: [Int])] { get }

    /// Points the layer at its slice of the model's flat parameter and gradient buffers.
    func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>)

    /// Writes initial values into the bound parameters.
    func initialize(scheme: InitScheme, using rng: inout SeededGenerator)

    /// y = layer(x) for `batch` samples. `rng` is used only by stochastic layers in training mode.
    func forward(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, training: Bool,
        rng: inout SeededGenerator)

    /// Given dL/dy, overwrites the parameter gradients with dL/dparameters for this batch and,
    /// when `dx` is not nil, writes dL/dx. `x` and `y` are the values of the last forward pass.
    func backward(
        x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
        dx: UnsafeMutablePointer<Float>?, batch: Int)
}

extension Layer {
    var inputSize: Int { inputShape.reduce(1, *) }
    var outputSize: Int { outputShape.reduce(1, *) }
}

/// How weights are drawn at initialization. Biases always start at zero.
public enum InitScheme: String, Codable, Sendable, CaseIterable {
    /// He et al. 2015: uniform in ±sqrt(6 / fan_in); for layers followed by ReLU.
    case he
    /// Glorot & Bengio 2010: uniform in ±sqrt(6 / (fan_in + fan_out)).
    case xavier

    func bound(fanIn: Int, fanOut: Int) -> Float {
        switch self {
        case .he: return Float((6.0 / Double(fanIn)).squareRoot())
        case .xavier: return Float((6.0 / Double(fanIn + fanOut)).squareRoot())
        }
    }
}

extension SeededGenerator {
    /// Fills `count` floats with uniform values in [-bound, bound].
    mutating func fillUniform(_ p: UnsafeMutablePointer<Float>, count: Int, bound: Float) {
        for i in 0..<count { p[i] = Float(nextUnit() * 2 - 1) * bound }
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// A sequential classifier built from a ``ModelSpec``, with all parameters in one flat contiguous Float32
/// vector (layer by layer, weight then bias) and a gradient vector of the same layout.
///
/// That flat vector is what federation moves, averages and encodes. A model preallocates its activation
/// buffers for the largest batch it has seen, so a training step allocates nothing.
/// Not `Sendable`: a model is used by one thread at a time; move ``parameterVector()`` between threads.
public final class Model {
    /// The spec the model was built from.
    public let spec: ModelSpec
    /// Total number of trainable parameters.
    public let parameterCount: Int
    /// Where each layer's parameters live in the flat vector.
    public let parameterViews: [ParameterView]

    let layers: [any Layer]
    /// For each built layer, the index of the spec layer it implements (-1 for an inserted layout move).
    let specIndices: [Int]
    let parameters: FloatBuffer
    let gradients: FloatBuffer
    private var capacity = 0
    private var input = FloatBuffer(count: 0)
    private var activations: [FloatBuffer] = []
    private var activationGradients: [FloatBuffer] = []
    private var logitGradient = FloatBuffer(count: 0)

    /// Builds the model and initializes its weights deterministically from `seed`.
    /// - Throws: ``CoreError/Code/invalidArgument`` when the spec is inconsistent (shapes, sizes, rates).
    public init(spec: ModelSpec, seed: UInt64) throws(CoreError) {
        guard spec.version <= ModelSpec.currentVersion else {
            throw CoreError(.unsupportedVersion, "model spec version \(spec.version) is newer than this build supports (\(ModelSpec.currentVersion)); upgrade Flock")
        }
        guard !spec.inputShape.isEmpty, spec.inputShape.allSatisfy({ $0 > 0 }) else {
            throw CoreError(.invalidArgument, "model input shape \(spec.inputShape) must have positive dimensions")
        }
        var shape = spec.inputShape
        // Built layers with the spec index each came from. Besides the spec's layers, the model inserts
        // layout moves (a channel-major transpose of multi-channel inputs, a Flatten before a dense layer
        // that follows a spatial one), and builds "ReLU, max-pool" as "max-pool, ReLU": the same values and
        // gradients (max commutes with the monotone ReLU; the first maximum is picked either way), at a
        // quarter of the elementwise work.
        var layers = [(layer: any Layer, specIndex: Int)]()
        if shape.count == 3 && shape[0] > 1 { layers.append((ChannelMajor(shape: shape), -1)) }
        var index = 0
        while index < spec.layers.count {
            let layer = spec.layers[index]
            var built: [any Layer] = []
            switch layer {
            case .dense(let units):
                guard units > 0 else { throw CoreError(.invalidArgument, "layer \(index): dense needs at least 1 unit") }
                if shape.count == 3 { built.append(Flatten(shape: shape)) }
                built.append(Dense(inputs: shape.reduce(1, *), outputs: units))
            case .conv2d(let filters, let kernel, let stride, let padding):
                guard shape.count == 3 else {
                    throw CoreError(.invalidArgument, "layer \(index): conv2d needs a [channels, height, width] input, got \(shape)")
                }
                guard filters > 0, kernel > 0, stride > 0, padding >= 0,
                    shape[1] + 2 * padding >= kernel, shape[2] + 2 * padding >= kernel
                else {
                    throw CoreError(.invalidArgument, "layer \(index): conv2d \(filters) filters, kernel \(kernel), stride \(stride), padding \(padding) does not fit input \(shape)")
                }
                built.append(Conv2D(input: shape, filters: filters, kernel: kernel, stride: stride, padding: padding))
            case .maxPool2d(let size, let stride):
                guard shape.count == 3, size > 0, stride > 0, shape[1] >= size, shape[2] >= size else {
                    throw CoreError(.invalidArgument, "layer \(index): maxpool \(size)/\(stride) does not fit input \(shape)")
                }
                built.append(MaxPool2D(input: shape, size: size, stride: stride))
            case .relu:
                if index + 1 < spec.layers.count, case .maxPool2d(let size, let stride) = spec.layers[index + 1],
                    shape.count == 3, size > 0, stride > 0, shape[1] >= size, shape[2] >= size
                {
                    let pool = MaxPool2D(input: shape, size: size, stride: stride)
                    layers.append((pool, index + 1))
                    layers.append((ReLU(shape: pool.outputShape), index))
                    shape = pool.outputShape
                    index += 2
                    continue
                }
                built.append(ReLU(shape: shape))
            case .flatten:
                built.append(Flatten(shape: shape))
            case .dropout(let rate):
                guard rate >= 0, rate < 1 else { throw CoreError(.invalidArgument, "layer \(index): dropout rate must be in [0, 1)") }
                built.append(Dropout(shape: shape, rate: Float(rate)))
            }
            for b in built {
                layers.append((b, index))
                shape = b.outputShape
            }
            index += 1
        }
        guard !layers.isEmpty, shape.reduce(1, *) == spec.classCount else {
            throw CoreError(.invalidArgument, "the last layer must output \(spec.classCount) values (one per class), got \(shape)")
        }
        self.spec = spec
        self.layers = layers.map(\.layer)
        specIndices = layers.map(\.specIndex)
        parameterCount = layers.reduce(0) { $0 + $1.layer.parameterCount }
        parameters = FloatBuffer(count: parameterCount)
        gradients = FloatBuffer(count: parameterCount)
        var views = [ParameterView]()
        var offset = 0
        for (layer, specIndex) in layers {
            layer.bind(parameters: parameters.pointer + offset, gradients: gradients.pointer + offset)
            var local = offset
            for (name, shape) in layer.parameterShapes {
                views.append(ParameterView(name: "\(specIndex).\(name)", layer: specIndex, offset: local, shape: shape))
                local += shape.reduce(1, *)
            }
            offset += layer.parameterCount
        }
        parameterViews = views
        initialize(seed: seed)
    }

    /// Re-draws every weight from `seed` (He before a ReLU, Xavier elsewhere, unless the spec says otherwise).
    public func initialize(seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        for (layer, index) in zip(layers, specIndices) where layer.parameterCount > 0 {
            let followedByReLU = index + 1 < spec.layers.count && spec.layers[index + 1] == .relu
            layer.initialize(scheme: spec.initScheme ?? (followedByReLU ? .he : .xavier), using: &rng)
        }
    }

    /// A copy of the flat parameter vector.
    public func parameterVector() -> [Float] { parameters.array }

    /// A copy of the flat gradient vector of the last backward pass.
    public func gradientVector() -> [Float] { gradients.array }

    /// Replaces the parameters.
    /// - Throws: ``CoreError/Code/modelMismatch`` when the count differs from ``parameterCount``.
    public func setParameters(_ values: [Float]) throws(CoreError) {
        guard values.count == parameterCount else {
            throw CoreError(.modelMismatch, "got \(values.count) parameters, the model has \(parameterCount)")
        }
        parameters.copy(from: values)
    }

    /// Gives direct access to the parameter vector (for optimizers and aggregation without a copy).
    public func withParameters<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(parameters.buffer)
    }

    /// Gives direct access to the parameter and gradient vectors together.
    public func withParametersAndGradients<R>(
        _ body: (UnsafeMutableBufferPointer<Float>, UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        try body(parameters.buffer, gradients.buffer)
    }

    // MARK: - Batched passes

    /// Makes room for batches of up to `batch` samples.
    func reserve(batch: Int) {
        guard batch > capacity else { return }
        capacity = batch
        input = FloatBuffer(count: batch * spec.inputFeatures)
        activations = layers.map { FloatBuffer(count: batch * $0.outputSize) }
        activationGradients = layers.map { FloatBuffer(count: batch * $0.outputSize) }
        logitGradient = FloatBuffer(count: batch * spec.classCount)
    }

    /// The input buffer for the next batch: the caller writes `batch` rows here after ``reserve(batch:)``.
    var inputBuffer: UnsafeMutablePointer<Float> { input.pointer }

    /// Runs the forward pass on the rows in ``inputBuffer`` and returns the logits (batch x classes).
    @discardableResult
    func forward(batch: Int, training: Bool, rng: inout SeededGenerator) -> UnsafePointer<Float> {
        var x = UnsafePointer(input.pointer)
        for (index, layer) in layers.enumerated() {
            let y = activations[index].pointer
            layer.forward(x, y, batch: batch, training: training, rng: &rng)
            x = UnsafePointer(y)
        }
        return x
    }

    /// Mean softmax cross-entropy of the last forward pass against `labels`, the number of correct
    /// predictions, and (when `backward` is true) the gradient of the mean loss in ``gradients``.
    func lossAndBackward(labels: UnsafePointer<Int32>, batch: Int, backward: Bool) -> (loss: Double, correct: Int) {
        let classes = spec.classCount
        let logits = UnsafePointer(activations[layers.count - 1].pointer)
        let d = logitGradient.pointer
        let (loss, correct) = SoftmaxCrossEntropy.evaluate(
            logits: logits, labels: labels, batch: batch, classes: classes, gradient: backward ? d : nil)
        if backward { propagate(batch: batch) }
        return (loss, correct)
    }

    private func propagate(batch: Int) {
        var dy = UnsafePointer(logitGradient.pointer)
        for index in stride(from: layers.count - 1, through: 0, by: -1) {
            let layer = layers[index]
            let x = index == 0 ? UnsafePointer(input.pointer) : UnsafePointer(activations[index - 1].pointer)
            // No layer before the first one: skip dL/dx there (saves col2im on a first convolution).
            let dx: UnsafeMutablePointer<Float>? = index == 0 ? nil : activationGradients[index - 1].pointer
            layer.backward(x: x, y: activations[index].pointer, dy: dy, dx: dx, batch: batch)
            if let dx { dy = UnsafePointer(dx) }
        }
    }

    // MARK: - Convenience API

    /// Logits for `count` rows of already-scaled features (row-major), computed in evaluation mode.
    public func logits(features: [Float], count: Int) -> [Float] {
        precondition(features.count == count * spec.inputFeatures, "feature count does not match the model input")
        var out = [Float]()
        out.reserveCapacity(count * spec.classCount)
        var rng = SeededGenerator(seed: 0)
        let chunk = Model.evaluationChunk
        var start = 0
        features.withUnsafeBufferPointer { f in
            while start < count {
                let n = min(chunk, count - start)
                reserve(batch: n)
                input.pointer.update(from: f.baseAddress! + start * spec.inputFeatures, count: n * spec.inputFeatures)
                let l = forward(batch: n, training: false, rng: &rng)
                out.append(contentsOf: UnsafeBufferPointer(start: l, count: n * spec.classCount))
                start += n
            }
        }
        return out
    }

    /// Mean loss over a batch and its exact gradient (a copy of the flat gradient vector), with
    /// `training` deciding the behaviour of dropout. Used by gradient checks and by callers that
    /// want a single step's numbers; the trainer uses the allocation-free path.
    public func lossAndGradient(features: [Float], labels: [Int32], training: Bool = false, rng: inout SeededGenerator) -> (loss: Double, gradient: [Float]) {
        let batch = labels.count
        precondition(features.count == batch * spec.inputFeatures, "feature count does not match the model input")
        reserve(batch: batch)
        features.withUnsafeBufferPointer { input.pointer.update(from: $0.baseAddress!, count: features.count) }
        forward(batch: batch, training: training, rng: &rng)
        let loss = labels.withUnsafeBufferPointer { lossAndBackward(labels: $0.baseAddress!, batch: batch, backward: true).loss }
        return (loss, gradients.array)
    }

    /// Loss, accuracy, per-class accuracy and confusion matrix on `data` (already scaled), in evaluation mode.
    public func evaluate(_ data: Dataset) -> EvaluationMetrics {
        let classes = spec.classCount
        var confusion = [[Int]](repeating: [Int](repeating: 0, count: classes), count: classes)
        var lossSum = 0.0
        var rng = SeededGenerator(seed: 0)
        var start = 0
        data.features.withUnsafeBufferPointer { f in
            data.labels.withUnsafeBufferPointer { l in
                while start < data.count {
                    let n = min(Model.evaluationChunk, data.count - start)
                    reserve(batch: n)
                    input.pointer.update(from: f.baseAddress! + start * spec.inputFeatures, count: n * spec.inputFeatures)
                    let logits = forward(batch: n, training: false, rng: &rng)
                    lossSum += lossAndBackward(labels: l.baseAddress! + start, batch: n, backward: false).loss * Double(n)
                    for r in 0..<n {
                        let predicted = SoftmaxCrossEntropy.argmax(logits + r * classes, classes)
                        let truth = Int(l[start + r])
                        if truth >= 0 && truth < classes { confusion[truth][predicted] += 1 }
                    }
                    start += n
                }
            }
        }
        return EvaluationMetrics(confusion: confusion, totalLoss: lossSum)
    }

    /// Rows per chunk in evaluation and prediction.
    static let evaluationChunk = 256
}

/// Where one named parameter tensor lives in the flat vector.
public struct ParameterView: Sendable, Equatable, Codable {
    /// `LAYER.weight` or `LAYER.bias`.
    public let name: String
    /// Index of the layer in the spec.
    public let layer: Int
    /// Offset of the first element in the flat vector.
    public let offset: Int
    /// Shape of the tensor.
    public let shape: [Int]
    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
}

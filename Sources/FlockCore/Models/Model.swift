
/// A sequential classifier built from a ``ModelSpec``, with all parameters in one flat contiguous Float32
/// vector (layer by layer, weight then bias) and a gradient vector of the same layout.
///
/// That flat vector is what federation moves, averages and encodes. A model preallocates its buffers for
/// the largest batch it has seen, so a training step allocates nothing. With ``ComputeThreads`` above 1,
/// a batch's rows are split over per-thread replicas of the layer stack that share the weights (data
/// parallelism); their gradients are summed in a fixed order, so results are deterministic for a given
/// thread count.
/// Not `Sendable`: a model is used by one thread at a time; move ``parameterVector()`` between threads.
public final class Model {
    /// The spec the model was built from.
    public let spec: ModelSpec
    /// Total number of trainable parameters.
    public let parameterCount: Int
    /// Where each layer's parameters live in the flat vector.
    public let parameterViews: [ParameterView]
    /// Threads this model splits a batch's rows over (at least 1); starts at ``ComputeThreads/count``.
    /// Results are deterministic for a given value.
    public var threads: Int {
        didSet { threads = max(1, threads) }
    }

    let parameters: FloatBuffer
    /// The gradient of the last training step (replica 0's buffer, which receives the others' sums).
    let gradients: FloatBuffer
    private var replicas: [Replica]
    private var batchInput = FloatBuffer(count: 0)
    private var capacity = 0

    /// Builds the model and initializes its weights deterministically from `seed`.
    /// - Throws: ``CoreError/Code/invalidArgument`` when the spec is inconsistent (shapes, sizes, rates).
    public convenience init(spec: ModelSpec, seed: UInt64) throws(CoreError) {
        try self.init(spec: spec, initialization: seed)
    }

    /// Builds the model with `parameters` as its weights (no random draw first).
    /// - Throws: ``CoreError`` when the spec is inconsistent or `parameters` has the wrong length.
    public convenience init(spec: ModelSpec, parameters: [Float]) throws(CoreError) {
        try self.init(spec: spec, initialization: nil, expectedParameters: parameters.count)
        try setParameters(parameters)
    }

    /// - Parameter expectedParameters: when given, the spec's parameter count must equal it, checked before any
    ///   buffer is allocated.
    private init(spec: ModelSpec, initialization seed: UInt64?, expectedParameters: Int? = nil) throws(CoreError) {
        let (layers, count) = try Model.checkedLayers(spec)
        if let expectedParameters, expectedParameters != count {
            throw CoreError(.modelMismatch, "got \(expectedParameters) parameters, the model has \(count)")
        }
        self.spec = spec
        threads = ComputeThreads.count
        parameterCount = count
        parameters = FloatBuffer(count: parameterCount)
        let first = Replica(layers: layers, parameters: parameters, classCount: spec.classCount)
        gradients = first.gradients
        replicas = [first]
        var views = [ParameterView]()
        var offset = 0
        for (layer, specIndex) in layers {
            var local = offset
            for (name, shape) in layer.parameterShapes {
                views.append(ParameterView(name: "\(specIndex).\(name)", layer: specIndex, offset: local, shape: shape))
                local += shape.reduce(1, *)
            }
            offset += layer.parameterCount
        }
        parameterViews = views
        if let seed { initialize(seed: seed) }
    }

    /// Checks a spec (its version, and every dimension and size against ``ModelSpec``'s bounds, with no overflow)
    /// and builds its layer stack, allocating no buffers.
    /// - Returns: the layers and the model's parameter count.
    /// - Throws: ``CoreError/Code/unsupportedVersion``, or ``CoreError/Code/invalidArgument`` naming the layer
    ///   and the bound it breaks.
    static func checkedLayers(_ spec: ModelSpec) throws(CoreError) -> (layers: [(layer: any Layer, specIndex: Int)], parameters: Int) {
        guard spec.version <= ModelSpec.currentVersion else {
            throw CoreError(.unsupportedVersion, "model spec version \(spec.version) is newer than this build supports (\(ModelSpec.currentVersion)); upgrade Flock")
        }
        guard (1...3).contains(spec.inputShape.count), spec.inputShape.allSatisfy({ $0 > 0 && $0 <= ModelSpec.maximumDimension }),
            let size = ModelSpec.product(spec.inputShape), size <= ModelSpec.maximumValuesPerSample
        else {
            throw CoreError(
                .invalidArgument,
                "model input shape \(spec.inputShape) must have 1 to 3 positive dimensions and at most \(ModelSpec.maximumValuesPerSample) values")
        }
        guard spec.classCount >= 2, spec.classCount <= ModelSpec.maximumValuesPerSample else {
            throw CoreError(.invalidArgument, "a model needs 2 to \(ModelSpec.maximumValuesPerSample) classes, not \(spec.classCount)")
        }
        guard spec.layers.count <= ModelSpec.maximumLayers else {
            throw CoreError(.invalidArgument, "the model lists \(spec.layers.count) layers; at most \(ModelSpec.maximumLayers) are supported")
        }
        let layers = try buildLayers(spec)
        // Each output is at most maximumValuesPerSample and there are at most a few built layers per spec layer.
        let activations = layers.reduce(0) { $0 + $1.layer.outputSize }
        guard activations <= ModelSpec.maximumActivationsPerSample else {
            throw CoreError(
                .invalidArgument, "the model's layers hold more than \(ModelSpec.maximumActivationsPerSample) values per sample")
        }
        var total = 0
        for (layer, _) in layers {
            let (next, overflow) = total.addingReportingOverflow(layer.parameterCount)
            guard !overflow, next <= ModelSpec.maximumParameters else {
                throw CoreError(.invalidArgument, "the model has more than \(ModelSpec.maximumParameters) parameters")
            }
            total = next
        }
        return (layers, total)
    }

    /// Builds the layer stack of a spec whose input shape is checked, with the spec index each layer came from.
    /// Every layer's dimensions, parameter count and output size are bounded before it is built.
    static func buildLayers(_ spec: ModelSpec) throws(CoreError) -> [(layer: any Layer, specIndex: Int)] {
        let limit = ModelSpec.maximumDimension
        func bounded(_ index: Int, _ what: String, _ values: Int...) throws(CoreError) {
            guard values.allSatisfy({ $0 <= limit }) else {
                throw CoreError(.invalidArgument, "layer \(index): \(what) exceeds \(limit)")
            }
        }
        func fits(_ index: Int, parameters: [Int]) throws(CoreError) {
            guard let count = ModelSpec.product(parameters), count <= ModelSpec.maximumParameters else {
                throw CoreError(.invalidArgument, "layer \(index): more than \(ModelSpec.maximumParameters) parameters")
            }
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
                try bounded(index, "dense units", units)
                try fits(index, parameters: [shape.reduce(1, *) + 1, units])
                if shape.count == 3 { built.append(Flatten(shape: shape)) }
                built.append(Dense(inputs: shape.reduce(1, *), outputs: units))
            case .conv2d(let filters, let kernel, let stride, let padding):
                guard shape.count == 3 else {
                    throw CoreError(.invalidArgument, "layer \(index): conv2d needs a [channels, height, width] input, got \(shape)")
                }
                try bounded(index, "conv2d filters, kernel, stride or padding", filters, kernel, stride, padding)
                guard filters > 0, kernel > 0, stride > 0, padding >= 0,
                    shape[1] + 2 * padding >= kernel, shape[2] + 2 * padding >= kernel
                else {
                    throw CoreError(.invalidArgument, "layer \(index): conv2d \(filters) filters, kernel \(kernel), stride \(stride), padding \(padding) does not fit input \(shape)")
                }
                try fits(index, parameters: [shape[0], kernel, kernel, filters])
                built.append(Conv2D(input: shape, filters: filters, kernel: kernel, stride: stride, padding: padding))
            case .maxPool2d(let size, let stride):
                try bounded(index, "maxpool size or stride", size, stride)
                guard shape.count == 3, size > 0, stride > 0, shape[1] >= size, shape[2] >= size else {
                    throw CoreError(.invalidArgument, "layer \(index): maxpool \(size)/\(stride) does not fit input \(shape)")
                }
                built.append(MaxPool2D(input: shape, size: size, stride: stride))
            case .relu:
                if index + 1 < spec.layers.count, case .maxPool2d(let size, let stride) = spec.layers[index + 1],
                    shape.count == 3, size > 0, stride > 0, size <= limit, stride <= limit, shape[1] >= size, shape[2] >= size
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
                guard let size = ModelSpec.product(b.outputShape), size <= ModelSpec.maximumValuesPerSample else {
                    throw CoreError(.invalidArgument, "layer \(index): more than \(ModelSpec.maximumValuesPerSample) output values per sample")
                }
                layers.append((b, index))
                shape = b.outputShape
            }
            index += 1
        }
        guard !layers.isEmpty, shape.reduce(1, *) == spec.classCount else {
            throw CoreError(.invalidArgument, "the last layer must output \(spec.classCount) values (one per class), got \(shape)")
        }
        return layers
    }

    /// Re-draws every weight from `seed` (He before a ReLU, Xavier elsewhere, unless the spec says otherwise).
    public func initialize(seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        for (layer, index) in zip(replicas[0].layers, replicas[0].specIndices) where layer.parameterCount > 0 {
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

    /// Runs `body` with every layer reading its weights from `borrowed` instead of the model's own parameters
    /// (which are left as they are), so a pass can start from another weight vector without copying it in.
    /// Passes only read parameters, so `borrowed` is never written.
    /// - Precondition: `borrowed` has ``parameterCount`` values.
    func reading<R>(parameters borrowed: UnsafeBufferPointer<Float>, _ body: () -> R) -> R {
        precondition(borrowed.count == parameterCount, "borrowed parameters of the wrong length")
        let pointer = UnsafeMutablePointer(mutating: borrowed.baseAddress!)
        for replica in replicas { replica.bind(parameters: pointer) }
        defer { for replica in replicas { replica.bind(parameters: parameters.pointer) } }
        return body()
    }

    // MARK: - Batched passes

    /// Makes room for batches of up to `batch` rows in ``inputBuffer``.
    func reserve(batch: Int) {
        guard batch > capacity else { return }
        capacity = batch
        batchInput = FloatBuffer(count: batch * spec.inputFeatures)
    }

    /// The input buffer for the next batch: the caller writes `batch` rows here after ``reserve(batch:)``.
    var inputBuffer: UnsafeMutablePointer<Float> { batchInput.pointer }

    /// Runs forward, loss and (when `backward`) backward over the `batch` rows in ``inputBuffer``, split
    /// over the replicas. Returns the mean loss and the number of correct rows; the gradient of the mean
    /// loss lands in ``gradients``. `predictions` and `logits`, when given, receive each row's argmax
    /// and logits.
    @discardableResult
    func pass(
        batch: Int, labels: UnsafePointer<Int32>?, training: Bool, backward: Bool, rng: inout SeededGenerator,
        predictions: UnsafeMutablePointer<Int32>? = nil, logits: UnsafeMutablePointer<Float>? = nil
    ) -> (loss: Double, correct: Int) {
        let features = spec.inputFeatures, classes = spec.classCount
        let parts = Model.split(batch: batch, ways: min(threads, batch))
        let scale = 1 / Float(batch)
        if parts.count == 1 {
            let r = replicas[0].pass(
                input: batchInput.pointer, labels: labels, batch: batch, training: training, backward: backward,
                gradientScale: scale, rng: &rng, predictions: predictions, logits: logits)
            return (r.loss / Double(batch), r.correct)
        }
        while replicas.count < parts.count {
            // The spec was validated when the model was built, so building it again cannot fail.
            let layers = try! Model.buildLayers(spec)
            replicas.append(Replica(layers: layers, parameters: parameters, classCount: classes))
        }
        let seeds = parts.map { _ in rng.next() }
        let input = batchInput.pointer
        let results = Parallel.map(parts.count) { i in
            let (start, count) = parts[i]
            var local = SeededGenerator(seed: seeds[i])
            return replicas[i].pass(
                input: input + start * features, labels: labels.map { $0 + start }, batch: count, training: training,
                backward: backward, gradientScale: scale, rng: &local, predictions: predictions.map { $0 + start },
                logits: logits.map { $0 + start * classes })
        }
        if backward { sumGradients(replicaCount: parts.count) }
        let loss = results.reduce(0.0) { $0 + $1.loss }
        return (loss / Double(batch), results.reduce(0) { $0 + $1.correct })
    }

    /// gradients += replica r's gradients for r = 1, 2, ... (a fixed order), split over threads by range.
    private func sumGradients(replicaCount: Int) {
        let total = gradients.pointer
        let others = replicas[1..<replicaCount].map { $0.gradients.pointer }
        let n = parameterCount
        let chunks = Model.split(batch: n, ways: min(threads, max(1, n / 4096)))
        Parallel.forEach(chunks.count) { c in
            let (start, count) = chunks[c]
            for other in others { BLAS.axpy(count: count, alpha: 1, x: other + start, y: total + start) }
        }
    }

    /// Splits `batch` rows into at most `ways` contiguous (start, count) parts of near-equal size.
    static func split(batch: Int, ways: Int) -> [(start: Int, count: Int)] {
        let ways = max(1, min(ways, batch))
        var parts = [(start: Int, count: Int)]()
        var start = 0
        for w in 0..<ways {
            let count = batch / ways + (w < batch % ways ? 1 : 0)
            parts.append((start, count))
            start += count
        }
        return parts
    }

    // MARK: - Convenience API

    /// Logits for `count` rows of already-scaled features (row-major), computed in evaluation mode.
    public func logits(features: [Float], count: Int) -> [Float] {
        precondition(features.count == count * spec.inputFeatures, "feature count does not match the model input")
        var out = [Float](repeating: 0, count: count * spec.classCount)
        var rng = SeededGenerator(seed: 0)
        out.withUnsafeMutableBufferPointer { o in
            forEachChunk(of: features, count: count) { start, n in
                pass(batch: n, labels: nil, training: false, backward: false, rng: &rng, logits: o.baseAddress! + start * spec.classCount)
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
        features.withUnsafeBufferPointer { batchInput.pointer.update(from: $0.baseAddress!, count: features.count) }
        let loss = labels.withUnsafeBufferPointer {
            pass(batch: batch, labels: $0.baseAddress!, training: training, backward: true, rng: &rng).loss
        }
        return (loss, gradients.array)
    }

    /// Loss, accuracy, per-class accuracy and confusion matrix on `data` (already scaled), in evaluation mode.
    public func evaluate(_ data: Dataset) -> EvaluationMetrics {
        let classes = spec.classCount
        var confusion = [[Int]](repeating: [Int](repeating: 0, count: classes), count: classes)
        var lossSum = 0.0
        var rng = SeededGenerator(seed: 0)
        var predicted = [Int32](repeating: 0, count: Model.evaluationChunk)
        data.labels.withUnsafeBufferPointer { l in
            predicted.withUnsafeMutableBufferPointer { p in
                forEachChunk(of: data.features, count: data.count) { start, n in
                    lossSum += pass(batch: n, labels: l.baseAddress! + start, training: false, backward: false, rng: &rng, predictions: p.baseAddress!).loss * Double(n)
                    for r in 0..<n {
                        let truth = Int(l[start + r])
                        if truth >= 0 && truth < classes { confusion[truth][Int(p[r])] += 1 }
                    }
                }
            }
        }
        return EvaluationMetrics(confusion: confusion, totalLoss: lossSum)
    }

    /// Copies `count` rows of `features` into the input buffer a chunk at a time and calls `body(start, rows)`.
    private func forEachChunk(of features: [Float], count: Int, _ body: (Int, Int) -> Void) {
        features.withUnsafeBufferPointer { f in
            var start = 0
            while start < count {
                let n = min(Model.evaluationChunk, count - start)
                reserve(batch: n)
                batchInput.pointer.update(from: f.baseAddress! + start * spec.inputFeatures, count: n * spec.inputFeatures)
                body(start, n)
                start += n
            }
        }
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

/// One thread's copy of a model's layer stack: its own activations, workspaces and gradient buffer, with
/// the parameters shared (read-only during a pass). ``Model`` runs one replica per thread on disjoint rows.
final class Replica {
    let layers: [any Layer]
    /// For each built layer, the index of the spec layer it implements (-1 for an inserted layout move).
    let specIndices: [Int]
    /// This replica's gradient of the loss over its rows, scaled to the whole batch.
    let gradients: FloatBuffer
    private let classCount: Int
    private var capacity = 0
    private var activations: [FloatBuffer] = []
    private var activationGradients: [FloatBuffer] = []
    private var logitGradient = FloatBuffer(count: 0)

    init(layers: [(layer: any Layer, specIndex: Int)], parameters: FloatBuffer, classCount: Int) {
        self.layers = layers.map(\.layer)
        specIndices = layers.map(\.specIndex)
        self.classCount = classCount
        gradients = FloatBuffer(count: parameters.count)
        bind(parameters: parameters.pointer)
    }

    /// Points every layer at its slice of the flat parameter vector starting at `parameters` (gradients stay
    /// this replica's own). Layers only read parameters during a pass.
    func bind(parameters: UnsafeMutablePointer<Float>) {
        var offset = 0
        for layer in layers {
            layer.bind(parameters: parameters + offset, gradients: gradients.pointer + offset)
            offset += layer.parameterCount
        }
    }

    private func reserve(batch: Int) {
        guard batch > capacity else { return }
        capacity = batch
        activations = layers.map { FloatBuffer(count: batch * $0.outputSize) }
        activationGradients = layers.map { FloatBuffer(count: batch * $0.outputSize) }
        logitGradient = FloatBuffer(count: batch * classCount)
    }

    /// Forward pass over `batch` sample-major rows at `input`; then, with `labels`, the summed loss and the
    /// number of correct rows, and with `backward` the gradient (scaled by `gradientScale`) in ``gradients``.
    func pass(
        input: UnsafePointer<Float>, labels: UnsafePointer<Int32>?, batch: Int, training: Bool, backward: Bool,
        gradientScale: Float, rng: inout SeededGenerator, predictions: UnsafeMutablePointer<Int32>?,
        logits: UnsafeMutablePointer<Float>?
    ) -> (loss: Double, correct: Int) {
        reserve(batch: batch)
        var x = input
        for (index, layer) in layers.enumerated() {
            let y = activations[index].pointer
            layer.forward(x, y, batch: batch, training: training, rng: &rng)
            x = UnsafePointer(y)
        }
        let output = x
        logits?.update(from: output, count: batch * classCount)
        if let predictions {
            for r in 0..<batch { predictions[r] = Int32(SoftmaxCrossEntropy.argmax(output + r * classCount, classCount)) }
        }
        guard let labels else { return (0, 0) }
        let result = SoftmaxCrossEntropy.evaluate(
            logits: output, labels: labels, batch: batch, classes: classCount,
            gradient: backward ? logitGradient.pointer : nil, gradientScale: gradientScale)
        if backward { propagate(input: input, batch: batch) }
        return result
    }

    private func propagate(input: UnsafePointer<Float>, batch: Int) {
        var dy = UnsafePointer(logitGradient.pointer)
        for index in stride(from: layers.count - 1, through: 0, by: -1) {
            let x = index == 0 ? input : UnsafePointer(activations[index - 1].pointer)
            // No layer before the first one: skip dL/dx there (saves col2im on a first convolution).
            let dx: UnsafeMutablePointer<Float>? = index == 0 ? nil : activationGradients[index - 1].pointer
            layers[index].backward(x: x, y: activations[index].pointer, dy: dy, dx: dx, batch: batch)
            if let dx { dy = UnsafePointer(dx) }
        }
    }
}

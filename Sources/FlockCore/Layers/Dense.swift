/// A fully connected layer: y = x W^T + b, with W stored out x in (the PyTorch layout).
final class Dense: Layer {
    let inputShape: [Int]
    let outputShape: [Int]
    let inputs: Int
    let outputs: Int
    var parameterCount: Int { outputs * inputs + outputs }
    var parameterShapes: [(name: String, shape: [Int])] { [("weight", [outputs, inputs]), ("bias", [outputs])] }

    private var weight: UnsafeMutablePointer<Float>!
    private var bias: UnsafeMutablePointer<Float>!
    private var weightGradient: UnsafeMutablePointer<Float>!
    private var biasGradient: UnsafeMutablePointer<Float>!

    init(inputs: Int, outputs: Int) {
        self.inputs = inputs
        self.outputs = outputs
        inputShape = [inputs]
        outputShape = [outputs]
    }

    func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>) {
        weight = parameters
        bias = parameters + outputs * inputs
        weightGradient = gradients
        biasGradient = gradients + outputs * inputs
    }

    func initialize(scheme: InitScheme, using rng: inout SeededGenerator) {
        rng.fillUniform(weight, count: outputs * inputs, bound: scheme.bound(fanIn: inputs, fanOut: outputs))
        bias.update(repeating: 0, count: outputs)
    }

    func forward(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, training: Bool,
        rng: inout SeededGenerator
    ) {
        for r in 0..<batch { (y + r * outputs).update(from: bias, count: outputs) }
        BLAS.gemm(
            transA: false, transB: true, m: batch, n: outputs, k: inputs,
            a: x, lda: inputs, b: weight, ldb: inputs, beta: 1, c: y, ldc: outputs)
    }

    func backward(
        x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
        dx: UnsafeMutablePointer<Float>?, batch: Int
    ) {
        // dW = dy^T x  (out x in)
        BLAS.gemm(
            transA: true, transB: false, m: outputs, n: inputs, k: batch,
            a: dy, lda: outputs, b: x, ldb: inputs, beta: 0, c: weightGradient, ldc: inputs)
        // db = column sums of dy
        biasGradient.update(from: dy, count: outputs)
        for r in 1..<max(1, batch) {
            let row = dy + r * outputs
            for j in 0..<outputs { biasGradient[j] += row[j] }
        }
        // dx = dy W  (batch x in)
        if let dx {
            BLAS.gemm(
                transA: false, transB: false, m: batch, n: inputs, k: outputs,
                a: dy, lda: outputs, b: weight, ldb: inputs, beta: 0, c: dx, ldc: inputs)
        }
    }
}

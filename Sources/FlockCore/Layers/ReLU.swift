/// The rectified linear unit, y = max(x, 0), elementwise.
final class ReLU: Layer {
    let inputShape: [Int]
    var outputShape: [Int] { inputShape }
    var parameterCount: Int { 0 }
    var parameterShapes: [(name: String, shape: [Int])] { [] }

    init(shape: [Int]) { inputShape = shape }

    func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>) {}
    func initialize(scheme: InitScheme, using rng: inout SeededGenerator) {}

    func forward(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, training: Bool,
        rng: inout SeededGenerator
    ) {
        let n = batch * inputSize
        for i in 0..<n { y[i] = max(x[i], 0) }
    }

    func backward(
        x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
        dx: UnsafeMutablePointer<Float>?, batch: Int
    ) {
        guard let dx else { return }
        let n = batch * inputSize
        for i in 0..<n { dx[i] = y[i] > 0 ? dy[i] : 0 }
    }
}

/// Reshapes [C, H, W] to [C * H * W]; the memory layout is unchanged.
final class Flatten: Layer {
    let inputShape: [Int]
    var outputShape: [Int] { [inputShape.reduce(1, *)] }
    var parameterCount: Int { 0 }
    var parameterShapes: [(name: String, shape: [Int])] { [] }

    init(shape: [Int]) { inputShape = shape }

    func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>) {}
    func initialize(scheme: InitScheme, using rng: inout SeededGenerator) {}

    func forward(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, training: Bool,
        rng: inout SeededGenerator
    ) {
        y.update(from: x, count: batch * inputSize)
    }

    func backward(
        x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
        dx: UnsafeMutablePointer<Float>?, batch: Int
    ) {
        dx?.update(from: dy, count: batch * inputSize)
    }
}

/// Inverted dropout (Srivastava et al. 2014): in training each element is zeroed with probability `rate`
/// and survivors are scaled by 1 / (1 - rate); at evaluation it is the identity.
final class Dropout: Layer {
    let inputShape: [Int]
    var outputShape: [Int] { inputShape }
    var parameterCount: Int { 0 }
    var parameterShapes: [(name: String, shape: [Int])] { [] }
    let rate: Float
    private let mask = Workspace()
    private var maskValid = false

    init(shape: [Int], rate: Float) {
        inputShape = shape
        self.rate = rate
    }

    func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>) {}
    func initialize(scheme: InitScheme, using rng: inout SeededGenerator) {}

    func forward(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, training: Bool,
        rng: inout SeededGenerator
    ) {
        let n = batch * inputSize
        guard training, rate > 0 else {
            y.update(from: x, count: n)
            maskValid = false
            return
        }
        let m = mask.reserve(n)
        let keep = 1 - rate
        let scale = 1 / keep
        for i in 0..<n {
            m[i] = Float(rng.nextUnit()) < keep ? scale : 0
            y[i] = x[i] * m[i]
        }
        maskValid = true
    }

    func backward(
        x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
        dx: UnsafeMutablePointer<Float>?, batch: Int
    ) {
        guard let dx else { return }
        let n = batch * inputSize
        if maskValid {
            let m = mask.storage.pointer
            for i in 0..<n { dx[i] = dy[i] * m[i] }
        } else {
            dx.update(from: dy, count: n)
        }
    }
}

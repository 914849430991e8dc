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

/// Reshapes [C, H, W] to [C * H * W]: moves a batch from the channel-major layout of spatial layers,
/// [C, batch, H * W], to the sample-major layout of dense layers, [batch, C * H * W].
final class Flatten: Layer {
    let inputShape: [Int]
    var outputShape: [Int] { [inputShape.reduce(1, *)] }
    var parameterCount: Int { 0 }
    var parameterShapes: [(name: String, shape: [Int])] { [] }
    private let channels: Int
    private let plane: Int

    init(shape: [Int]) {
        inputShape = shape
        channels = shape.count == 3 ? shape[0] : 1
        plane = shape.reduce(1, *) / channels
    }

    func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>) {}
    func initialize(scheme: InitScheme, using rng: inout SeededGenerator) {}

    func forward(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, training: Bool,
        rng: inout SeededGenerator
    ) {
        Layout.transpose(x, into: y, outer: channels, batch: batch, inner: plane, toSampleMajor: true)
    }

    func backward(
        x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
        dx: UnsafeMutablePointer<Float>?, batch: Int
    ) {
        guard let dx else { return }
        Layout.transpose(dy, into: dx, outer: channels, batch: batch, inner: plane, toSampleMajor: false)
    }
}

/// Moves a [C, H, W] model input from the sample-major layout rows arrive in, [batch, C, H * W], to the
/// channel-major layout of spatial layers, [C, batch, H * W]. Inserted by ``Model`` before the first layer
/// when the input has more than one channel (with one channel the two layouts coincide).
final class ChannelMajor: Layer {
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
        Layout.transpose(x, into: y, outer: inputShape[0], batch: batch, inner: inputSize / inputShape[0], toSampleMajor: false)
    }

    func backward(
        x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
        dx: UnsafeMutablePointer<Float>?, batch: Int
    ) {
        guard let dx else { return }
        Layout.transpose(dy, into: dx, outer: inputShape[0], batch: batch, inner: inputSize / inputShape[0], toSampleMajor: true)
    }
}

/// Batch layouts. Dense layers see sample-major batches, [batch, features]. Spatial layers (convolution,
/// pooling, and elementwise layers between them) see channel-major batches, [C, batch, H, W], so that a
/// convolution's matrix product writes its output in place, and pooling runs over C * batch planes.
enum Layout {
    /// Copies between [batch, outer, inner] (sample-major) and [outer, batch, inner] (channel-major).
    static func transpose(
        _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, outer: Int, batch: Int, inner: Int,
        toSampleMajor: Bool
    ) {
        for c in 0..<outer {
            for b in 0..<batch {
                let channelMajor = (c * batch + b) * inner
                let sampleMajor = (b * outer + c) * inner
                if toSampleMajor {
                    (y + sampleMajor).update(from: x + channelMajor, count: inner)
                } else {
                    (y + channelMajor).update(from: x + sampleMajor, count: inner)
                }
            }
        }
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

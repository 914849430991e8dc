/// Max pooling over [C, H, W] with a square window and stride (no padding; a partial window at the edge
/// is dropped, as in PyTorch's default). The gradient flows to the first maximum of each window.
final class MaxPool2D: Layer {
    let inputShape: [Int]
    let outputShape: [Int]
    let channels: Int, height: Int, width: Int
    let size: Int, stride: Int
    let outHeight: Int, outWidth: Int
    var parameterCount: Int { 0 }
    var parameterShapes: [(name: String, shape: [Int])] { [] }
    private var argmax = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
    private var argmaxCapacity = 1

    init(input: [Int], size: Int, stride: Int) {
        precondition(input.count == 3, "MaxPool2D takes [C, H, W] inputs")
        channels = input[0]
        height = input[1]
        width = input[2]
        self.size = size
        self.stride = stride
        outHeight = (height - size) / stride + 1
        outWidth = (width - size) / stride + 1
        inputShape = input
        outputShape = [channels, outHeight, outWidth]
    }

    deinit { argmax.deallocate() }

    func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>) {}
    func initialize(scheme: InitScheme, using rng: inout SeededGenerator) {}

    func forward(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, training: Bool,
        rng: inout SeededGenerator
    ) {
        let total = batch * outputSize
        if argmaxCapacity < total {
            argmax.deallocate()
            argmax = .allocate(capacity: total)
            argmaxCapacity = total
        }
        // Channel-major activations: every (channel, sample) plane is pooled the same way.
        let planes = channels * batch
        let inPlane = height * width
        var o = 0
        if size == 2 && stride == 2 {
            for p in 0..<planes {
                let base = p * inPlane
                for oh in 0..<outHeight {
                    let r0 = base + 2 * oh * width
                    let r1 = r0 + width
                    for ow in 0..<outWidth {
                        // Branch-free: data-dependent branches mispredict half the time here.
                        let i0 = r0 + 2 * ow, i1 = r1 + 2 * ow
                        let a = x[i0], b = x[i0 + 1], c = x[i1], d = x[i1 + 1]
                        let top = b > a ? i0 + 1 : i0
                        let topValue = b > a ? b : a
                        let bottom = d > c ? i1 + 1 : i1
                        let bottomValue = d > c ? d : c
                        let best = bottomValue > topValue ? bottom : top
                        y[o] = bottomValue > topValue ? bottomValue : topValue
                        argmax[o] = Int32(truncatingIfNeeded: best)
                        o += 1
                    }
                }
            }
            return
        }
        for p in 0..<planes {
            let base = p * inPlane
            for oh in 0..<outHeight {
                for ow in 0..<outWidth {
                    var best = base + (oh * stride) * width + ow * stride
                    for ki in 0..<size {
                        let rowStart = base + (oh * stride + ki) * width + ow * stride
                        for kj in 0..<size where x[rowStart + kj] > x[best] { best = rowStart + kj }
                    }
                    y[o] = x[best]
                    argmax[o] = Int32(best)
                    o += 1
                }
            }
        }
    }

    func backward(
        x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
        dx: UnsafeMutablePointer<Float>?, batch: Int
    ) {
        guard let dx else { return }
        dx.update(repeating: 0, count: batch * inputSize)
        for i in 0..<(batch * outputSize) { dx[Int(argmax[i])] += dy[i] }
    }
}

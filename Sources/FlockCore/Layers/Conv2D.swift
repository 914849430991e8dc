/// A 2-D convolution over [C, H, W] inputs with square kernels, stride and zero padding, computed as
/// im2col + one matrix product per batch (weights stored O x (C * k * k), the PyTorch layout).
///
/// Activations are channel-major, [C, batch, H, W] (see ``Layout``), so the whole batch unfolds into one
/// (C * k * k) x (batch * Ho * Wo) column matrix and each pass is a single large product whose result is
/// already in the output layout: no scatter, no transpose. The forward pass keeps the columns so the
/// backward pass reuses them instead of rebuilding them.
/// - Complexity: O(batch * O * C * k^2 * Ho * Wo) per pass.
final class Conv2D: Layer {
    let inputShape: [Int]
    let outputShape: [Int]
    let channels: Int, height: Int, width: Int
    let filters: Int, kernel: Int, stride: Int, padding: Int
    let outHeight: Int, outWidth: Int
    var parameterCount: Int { filters * patchSize + filters }
    var parameterShapes: [(name: String, shape: [Int])] {
        [("weight", [filters, channels, kernel, kernel]), ("bias", [filters])]
    }

    private var patchSize: Int { channels * kernel * kernel }
    private var positions: Int { outHeight * outWidth }
    private var weight: UnsafeMutablePointer<Float>!
    private var bias: UnsafeMutablePointer<Float>!
    private var weightGradient: UnsafeMutablePointer<Float>!
    private var biasGradient: UnsafeMutablePointer<Float>!
    private let columns = Workspace()
    private let columnGradient = Workspace()
    private let paddedGradient = Workspace()
    private var paddedInputBuffer = FloatBuffer(count: 0)

    init(input: [Int], filters: Int, kernel: Int, stride: Int, padding: Int) {
        precondition(input.count == 3, "Conv2D takes [C, H, W] inputs")
        channels = input[0]
        height = input[1]
        width = input[2]
        self.filters = filters
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        outHeight = (height + 2 * padding - kernel) / stride + 1
        outWidth = (width + 2 * padding - kernel) / stride + 1
        inputShape = input
        outputShape = [filters, outHeight, outWidth]
    }

    func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>) {
        weight = parameters
        bias = parameters + filters * patchSize
        weightGradient = gradients
        biasGradient = gradients + filters * patchSize
    }

    func initialize(scheme: InitScheme, using rng: inout SeededGenerator) {
        let bound = scheme.bound(fanIn: patchSize, fanOut: filters * kernel * kernel)
        rng.fillUniform(weight, count: filters * patchSize, bound: bound)
        bias.update(repeating: 0, count: filters)
    }

    func forward(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, training: Bool,
        rng: inout SeededGenerator
    ) {
        // Training keeps the whole batch's columns for the backward pass; evaluation works in small groups.
        let group = training ? batch : min(batch, Conv2D.evaluationGroup)
        let rowStride = batch * positions
        var first = 0
        while first < batch {
            let n = min(group, batch - first)
            let width = n * positions
            let cols = columns.reserve(patchSize * width)
            for b in 0..<n { im2col(x, sample: first + b, batch: batch, into: cols + b * positions, rowStride: width) }
            // Output rows start as the bias; one product adds (O x CKK)(CKK x n*P) into [O, batch*P] directly.
            let out = y + first * positions
            for f in 0..<filters { (out + f * rowStride).update(repeating: bias[f], count: width) }
            BLAS.gemm(
                transA: false, transB: false, m: filters, n: width, k: patchSize,
                a: weight, lda: patchSize, b: cols, ldb: width, beta: 1, c: out, ldc: rowStride)
            first += n
        }
    }

    func backward(
        x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
        dx: UnsafeMutablePointer<Float>?, batch: Int
    ) {
        let width = batch * positions
        let cols = columns.storage.pointer
        // db = row sums of dy, which is already [O, B*P].
        for f in 0..<filters {
            let row = dy + f * width
            var s: Float = 0
            for i in 0..<width { s += row[i] }
            biasGradient[f] = s
        }
        // dW = dy col^T: (O x B*P)(B*P x CKK), one product over the whole batch.
        BLAS.gemm(
            transA: false, transB: true, m: filters, n: patchSize, k: width,
            a: dy, lda: width, b: cols, ldb: width, beta: 0, c: weightGradient, ldc: patchSize)
        guard let dx else { return }
        // dcol = W^T dy: (CKK x O)(O x n*P) for a few samples at a time, so the column gradient stays in
        // cache between the product and col2im instead of streaming a batch-sized matrix through memory.
        let group = max(1, Conv2D.cacheFloats / (patchSize * positions))
        var first = 0
        while first < batch {
            let n = min(group, batch - first)
            let groupWidth = n * positions
            let dcol = columnGradient.reserve(patchSize * groupWidth)
            BLAS.gemm(
                transA: true, transB: false, m: patchSize, n: groupWidth, k: filters,
                a: weight, lda: patchSize, b: dy + first * positions, ldb: width, beta: 0, c: dcol, ldc: groupWidth)
            for b in 0..<n { col2im(dcol + b * positions, rowStride: groupWidth, into: dx, sample: first + b, batch: batch) }
            first += n
        }
    }

    /// Floats of column gradient computed per group in the backward pass (about 1 MB, an L2 cache).
    static let cacheFloats = 1 << 18

    /// Samples per group in evaluation mode (bounds the column buffer).
    static let evaluationGroup = 32

    /// Unfolds one sample into a (C * k * k) x (Ho * Wo) block of a column matrix whose rows are
    /// `rowStride` apart. The sample is first copied into the interior of a zero-bordered buffer, so every
    /// row segment is a plain copy with no bounds logic (segments are only 7-28 floats long).
    private func im2col(_ x: UnsafePointer<Float>, sample: Int, batch: Int, into col: UnsafeMutablePointer<Float>, rowStride: Int) {
        let plane = height * width
        let paddedWidth = width + 2 * padding
        let paddedPlane = (height + 2 * padding) * paddedWidth
        let padded = paddedInput(count: channels * paddedPlane)
        for c in 0..<channels {
            let src = x + (c * batch + sample) * plane
            let dst = padded + c * paddedPlane + padding * paddedWidth + padding
            for h in 0..<height {
                let s = src + h * width, d = dst + h * paddedWidth
                VectorCopy.copy(s, d, count: width)
            }
        }
        for c in 0..<channels {
            for ki in 0..<kernel {
                for kj in 0..<kernel {
                    let row = col + ((c * kernel + ki) * kernel + kj) * rowStride
                    let base = padded + c * paddedPlane + ki * paddedWidth + kj
                    for oh in 0..<outHeight {
                        let s = base + oh * stride * paddedWidth
                        let d = row + oh * outWidth
                        if stride == 1 {
                            VectorCopy.copy(s, d, count: outWidth)
                        } else {
                            for ow in 0..<outWidth { d[ow] = s[ow * stride] }
                        }
                    }
                }
            }
        }
    }

    /// Folds a column-gradient block back into one sample of the input gradient (the adjoint of
    /// ``im2col``): accumulates into a zero-bordered buffer, then copies its interior out.
    private func col2im(_ col: UnsafePointer<Float>, rowStride: Int, into dx: UnsafeMutablePointer<Float>, sample: Int, batch: Int) {
        let plane = height * width
        let paddedWidth = width + 2 * padding
        let paddedPlane = (height + 2 * padding) * paddedWidth
        let padded = paddedGradient.reserve(channels * paddedPlane)
        padded.update(repeating: 0, count: channels * paddedPlane)
        for c in 0..<channels {
            for ki in 0..<kernel {
                for kj in 0..<kernel {
                    let row = col + ((c * kernel + ki) * kernel + kj) * rowStride
                    let base = padded + c * paddedPlane + ki * paddedWidth + kj
                    for oh in 0..<outHeight {
                        let d = base + oh * stride * paddedWidth
                        let s = row + oh * outWidth
                        if stride == 1 {
                            VectorCopy.add(s, d, count: outWidth)
                        } else {
                            for ow in 0..<outWidth { d[ow * stride] += s[ow] }
                        }
                    }
                }
            }
        }
        for c in 0..<channels {
            let src = padded + c * paddedPlane + padding * paddedWidth + padding
            let dst = dx + (c * batch + sample) * plane
            for h in 0..<height {
                VectorCopy.copy(src + h * paddedWidth, dst + h * width, count: width)
            }
        }
    }

    /// The padded input buffer; its border is zeroed once when allocated and never written again.
    private func paddedInput(count: Int) -> UnsafeMutablePointer<Float> {
        if paddedInputBuffer.count < count { paddedInputBuffer = FloatBuffer(count: count) }
        return paddedInputBuffer.pointer
    }
}

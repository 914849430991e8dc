/// A 2-D convolution over [C, H, W] inputs with square kernels, stride and zero padding, computed as
/// im2col + one matrix product per batch (weights stored O x (C * k * k), the PyTorch layout).
///
/// Activations are channel-major, [C, batch, H, W] (see ``Layout``), so the whole batch unfolds into one
/// (C * k * k) x (batch * Ho * Wo) column matrix and each pass is a single large product whose result is
/// already in the output layout: no scatter, no transpose. The batch is processed in groups of samples
/// whose column matrix fits in cache; the backward pass rebuilds a group's columns rather than streaming
/// a batch-sized matrix through memory three times.
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
        let rowStride = batch * positions
        forEachGroup(batch: batch) { first, n in
            let width = n * positions
            let cols = unfold(x, first: first, count: n, batch: batch)
            // Output rows start as the bias; one product adds (O x CKK)(CKK x n*P) into [O, batch*P] directly.
            let out = y + first * positions
            for f in 0..<filters { (out + f * rowStride).update(repeating: bias[f], count: width) }
            BLAS.gemm(
                transA: false, transB: false, m: filters, n: width, k: patchSize,
                a: weight, lda: patchSize, b: cols, ldb: width, beta: 1, c: out, ldc: rowStride)
        }
    }

    func backward(
        x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
        dx: UnsafeMutablePointer<Float>?, batch: Int
    ) {
        let rowStride = batch * positions
        // db = row sums of dy, which is already [O, B*P].
        for f in 0..<filters {
            let row = dy + f * rowStride
            var s: Float = 0
            for i in 0..<rowStride { s += row[i] }
            biasGradient[f] = s
        }
        forEachGroup(batch: batch) { first, n in
            let width = n * positions
            let g = dy + first * positions
            // Columns are rebuilt per group rather than kept for the whole batch: a group's columns fit in
            // cache, a batch's do not (20 MB at batch 32 for the CNN's second layer).
            let cols = unfold(x, first: first, count: n, batch: batch)
            // dW += dy_g col_g^T: (O x n*P)(n*P x CKK).
            BLAS.gemm(
                transA: false, transB: true, m: filters, n: patchSize, k: width,
                a: g, lda: rowStride, b: cols, ldb: width, beta: first == 0 ? 0 : 1, c: weightGradient, ldc: patchSize)
            guard let dx else { return }
            // dcol = W^T dy_g: (CKK x O)(O x n*P), folded back per sample while still in cache.
            let dcol = columnGradient.reserve(patchSize * width)
            BLAS.gemm(
                transA: true, transB: false, m: patchSize, n: width, k: filters,
                a: weight, lda: patchSize, b: g, ldb: rowStride, beta: 0, c: dcol, ldc: width)
            for b in 0..<n { col2im(dcol + b * positions, rowStride: width, into: dx, sample: first + b, batch: batch) }
        }
    }

    /// Calls `body(first, count)` for consecutive groups of samples whose column matrix fits the cache budget.
    @inline(__always)
    private func forEachGroup(batch: Int, _ body: (Int, Int) -> Void) {
        let group = max(1, Conv2D.cacheFloats / (patchSize * positions))
        var first = 0
        while first < batch {
            let n = min(group, batch - first)
            body(first, n)
            first += n
        }
    }

    /// Unfolds samples `first ..< first + count` into the column buffer, (C * k * k) x (count * P).
    private func unfold(_ x: UnsafePointer<Float>, first: Int, count: Int, batch: Int) -> UnsafeMutablePointer<Float> {
        let width = count * positions
        let cols = columns.reserve(patchSize * width)
        for b in 0..<count { im2col(x, sample: first + b, batch: batch, into: cols + b * positions, rowStride: width) }
        return cols
    }

    /// Floats of column matrix per group of samples: 512 kB, a per-core L2 cache. Measured on the CNN
    /// (flock-edge train, 1 thread): 1 MB and 256 kB groups were 2-8% slower, 16 MB groups 20% slower.
    static let cacheFloats = 1 << 17


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

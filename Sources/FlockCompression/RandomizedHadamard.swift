/// A seeded random rotation of R^d that spreads an update's energy evenly over its coordinates before they
/// are quantized, so one range fits every coordinate of a block and few are clipped (Suresh et al. 2017,
/// "Distributed Mean Estimation with Limited Communication"; Konečný et al. 2016, "Federated Learning:
/// Strategies for Improving Communication Efficiency").
///
/// The rotation: permute the d coordinates in runs of ``chunk`` (a seeded permutation of the runs, so every
/// block holds a random sample of all layers while memory is still read a cache line at a time), pad with
/// zeros to a multiple of ``blockSize``, multiply by a seeded ±1 diagonal, and apply the orthonormal
/// Walsh–Hadamard transform H/√B to each block of B = 1,024. Every step is orthogonal, so the inverse is the
/// transpose, and the rotation is linear: the inverse rotation of a sum of rotated updates is the sum of the
/// updates. Edges and server build the same rotation from the seed in the round plan.
public struct RandomizedHadamard: Sendable {
    /// Coordinates per Hadamard block.
    public static let blockSize = 1_024
    /// Coordinates moved together by the permutation (one 64-byte cache line of floats).
    public static let chunk = 16

    /// Length of the vectors it rotates.
    public let length: Int
    /// Length of the rotated vectors: `length` rounded up to a multiple of ``blockSize``.
    public let paddedLength: Int
    /// Run p of the permuted vector holds run `order[p]` of the input (runs of ``chunk``).
    private let order: [Int32]
    /// Run q of the input lands in run `position[q]` of the permuted vector (the inverse of `order`).
    private let position: [Int32]
    /// The ±1 diagonal, kept by input coordinate (the sign applied where that coordinate lands), so that
    /// rotating reads the input, and these, sequentially.
    private let inputSigns: [Float]

    /// Builds the rotation of vectors of `length` drawn from `seed`.
    /// - Precondition: 1 ≤ `length` < 2^31.
    public init(length: Int, seed: UInt64) {
        precondition(length >= 1 && length < Int(Int32.max), "a rotation of 1 to 2^31 - 1 coordinates")
        self.length = length
        paddedLength = (length + Self.blockSize - 1) / Self.blockSize * Self.blockSize
        var random = SplitMix64(seed: seed)
        let runs = (length + Self.chunk - 1) / Self.chunk
        var order = (0..<Int32(runs)).map { $0 }
        if runs > 1 {
            for i in stride(from: runs - 1, to: 0, by: -1) {  // Fisher–Yates
                order.swapAt(i, Int(random.next() % UInt64(i + 1)))
            }
        }
        self.order = order
        var signs = [Float](repeating: 1, count: paddedLength)
        var bits: UInt64 = 0
        for i in 0..<paddedLength {
            if i % 64 == 0 { bits = random.next() }
            if bits & 1 == 1 { signs[i] = -1 }
            bits >>= 1
        }
        var position = [Int32](repeating: 0, count: runs)
        var inputSigns = [Float](repeating: 1, count: length)
        for (p, run) in order.enumerated() {
            position[Int(run)] = Int32(p)
            let source = Int(run) * Self.chunk
            for j in 0..<min(Self.chunk, length - source) { inputSigns[source + j] = signs[p * Self.chunk + j] }
        }
        self.position = position
        self.inputSigns = inputSigns
    }

    /// The rotation of `factor · (local − global)` (`global` nil: zero), from plain buffers with no
    /// per-value calls. The input is read in order and each run is scattered to its place (stores do not
    /// wait for memory the way loads from random places do).
    /// - Precondition: `local` (and `global`) hold ``length`` values.
    public func rotate(factor: Float, local: UnsafeBufferPointer<Float>, minus global: UnsafeBufferPointer<Float>?) -> [Float] {
        precondition(local.count == length && (global?.count ?? length) == length, "vectors of the wrong length")
        return [Float](unsafeUninitializedCapacity: paddedLength) { y, initialized in
            // Runs fill [0, runs · chunk) below; the padding after them, and the rest of the last (short)
            // input run's place, are zero.
            for i in (position.count * Self.chunk)..<paddedLength { y[i] = 0 }
            position.withUnsafeBufferPointer { position in
                inputSigns.withUnsafeBufferPointer { signs in
                    for q in 0..<position.count {
                        let source = q * Self.chunk, target = Int(position[q]) * Self.chunk
                        let run = min(Self.chunk, length - source)
                        if let global {
                            for j in 0..<run { y[target + j] = (local[source + j] - global[source + j]) * factor * signs[source + j] }
                        } else {
                            for j in 0..<run { y[target + j] = local[source + j] * factor * signs[source + j] }
                        }
                        for j in run..<Self.chunk { y[target + j] = 0 }
                    }
                }
            }
            Self.transformBlocks(y)
            initialized = paddedLength
        }
    }

    public func rotate(_ x: [Float]) -> [Float] {
        precondition(x.count == length, "a vector of the wrong length")
        return x.withUnsafeBufferPointer { x in rotate(factor: 1, local: x, minus: nil) }
    }

    /// The vector whose rotation is `y`, written into `x` (the padding's share is dropped).
    /// - Precondition: `y.count == paddedLength`, `x.count == length`.
    public func inverse(_ y: [Double], into x: inout [Float]) {
        precondition(y.count == paddedLength && x.count == length, "vectors of the wrong length")
        var z = y.map { Float($0) }
        z.withUnsafeMutableBufferPointer { z in
            Self.transformBlocks(z)
            x.withUnsafeMutableBufferPointer { x in
                order.withUnsafeBufferPointer { order in
                    inputSigns.withUnsafeBufferPointer { signs in
                        for p in 0..<order.count {
                            let source = Int(order[p]) * Self.chunk
                            for j in 0..<min(Self.chunk, length - source) { x[source + j] = z[p * Self.chunk + j] * signs[source + j] }
                        }
                    }
                }
            }
        }
    }

    /// The orthonormal Walsh–Hadamard transform, in place, on each block (it is its own inverse). The
    /// butterflies of spans 4, 2 and 1 run on eight values at a time in SIMD registers; the wider spans on
    /// contiguous runs, which vectorize (the stages commute, so their order is free).
    static func transformBlocks(_ v: UnsafeMutableBufferPointer<Float>) {
        let b = blockSize
        let norm = 1 / Float(b).squareRoot()
        let raw = UnsafeMutableRawPointer(v.baseAddress!)
        for start in stride(from: 0, to: v.count, by: b) {
            for offset in stride(from: 4 * start, to: 4 * (start + b), by: 32) {
                raw.storeBytes(of: transform8(raw.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)), toByteOffset: offset, as: SIMD8<Float>.self)
            }
            let block = raw + 4 * start
            var h = 8
            while h < b / 2 {
                for i in stride(from: 0, to: b, by: 2 * h) {
                    for j in stride(from: i, to: i + h, by: 8) {
                        let a = block.loadUnaligned(fromByteOffset: 4 * j, as: SIMD8<Float>.self)
                        let c = block.loadUnaligned(fromByteOffset: 4 * (j + h), as: SIMD8<Float>.self)
                        block.storeBytes(of: a + c, toByteOffset: 4 * j, as: SIMD8<Float>.self)
                        block.storeBytes(of: a - c, toByteOffset: 4 * (j + h), as: SIMD8<Float>.self)
                    }
                }
                h *= 2
            }
            // The widest span, with the 1/√B scaling.
            for j in stride(from: 0, to: h, by: 8) {
                let a = block.loadUnaligned(fromByteOffset: 4 * j, as: SIMD8<Float>.self)
                let c = block.loadUnaligned(fromByteOffset: 4 * (j + h), as: SIMD8<Float>.self)
                block.storeBytes(of: (a + c) * norm, toByteOffset: 4 * j, as: SIMD8<Float>.self)
                block.storeBytes(of: (a - c) * norm, toByteOffset: 4 * (j + h), as: SIMD8<Float>.self)
            }
        }
    }

    /// The unnormalized Walsh–Hadamard transform of eight values (spans 4, then 2, then 1).
    @inline(__always)
    static func transform8(_ v: SIMD8<Float>) -> SIMD8<Float> {
        @inline(__always) func transform4(_ w: SIMD4<Float>) -> SIMD4<Float> {
            let c = w.lowHalf + w.highHalf, d = w.lowHalf - w.highHalf
            return SIMD4(lowHalf: SIMD2(c.x + c.y, c.x - c.y), highHalf: SIMD2(d.x + d.y, d.x - d.y))
        }
        return SIMD8(lowHalf: transform4(v.lowHalf + v.highHalf), highHalf: transform4(v.lowHalf - v.highHalf))
    }
}

/// SplitMix64 (Steele, Lea and Flood 2014): the seeded generator of the codecs' shared randomness.
struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Short-vector copies for the convolution's unfold/fold loops, where rows are 7-28 floats and a
/// library call or a scalar remainder loop costs more than the copy itself.
enum VectorCopy {
    /// Copies `count` floats from `source` to `destination` (non-overlapping). For 8 or more floats it uses
    /// unaligned 8-wide loads and stores, the last chunk overlapping the previous one instead of a scalar tail.
    @inline(__always)
    static func copy(_ source: UnsafePointer<Float>, _ destination: UnsafeMutablePointer<Float>, count: Int) {
        if count < 8 {
            for i in 0..<count { destination[i] = source[i] }
            return
        }
        let src = UnsafeRawPointer(source)
        let dst = UnsafeMutableRawPointer(destination)
        var i = 0
        while i + 8 <= count {
            dst.storeBytes(of: src.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self), toByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        if i < count {
            let last = (count - 8) * 4
            dst.storeBytes(of: src.loadUnaligned(fromByteOffset: last, as: SIMD8<Float>.self), toByteOffset: last, as: SIMD8<Float>.self)
        }
    }

    /// destination[i] += source[i] for `count` floats, 8 at a time, then a scalar tail.
    @inline(__always)
    static func add(_ source: UnsafePointer<Float>, _ destination: UnsafeMutablePointer<Float>, count: Int) {
        let src = UnsafeRawPointer(source)
        let dst = UnsafeMutableRawPointer(destination)
        var i = 0
        while i + 8 <= count {
            let sum = dst.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) + src.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            dst.storeBytes(of: sum, toByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        while i < count {
            destination[i] += source[i]
            i += 1
        }
    }
}

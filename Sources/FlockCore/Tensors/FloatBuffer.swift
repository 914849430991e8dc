/// A fixed-size, zero-initialized, 64-byte-aligned Float32 buffer that owns its memory.
///
/// The training hot path works on these (never on `[Float]`) so that a step allocates nothing and
/// never triggers copy-on-write. Not `Sendable`: a buffer belongs to one model on one thread.
final class FloatBuffer {
    /// Number of floats.
    let count: Int
    /// Start of the storage.
    let pointer: UnsafeMutablePointer<Float>

    init(count: Int) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * 4, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(1, count))
        pointer.initialize(repeating: 0, count: max(1, count))
    }

    deinit { pointer.deallocate() }

    var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }

    func zero() { pointer.update(repeating: 0, count: count) }

    func copy(from array: [Float]) {
        precondition(array.count == count, "size mismatch")
        array.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: count) }
    }

    var array: [Float] { Array(buffer) }
}

/// A growable buffer that keeps its storage between uses; ``reserve(_:)`` reallocates only to grow.
final class Workspace {
    private(set) var storage = FloatBuffer(count: 0)

    /// Ensures room for `count` floats and returns the start. Contents are unspecified.
    func reserve(_ count: Int) -> UnsafeMutablePointer<Float> {
        if storage.count < count { storage = FloatBuffer(count: count) }
        return storage.pointer
    }
}

import FlockParallel

/// Runs independent iterations on this thread and the ``WorkerPool`` (not the Swift cooperative pool).
public enum Parallel {
    /// Calls `body(i)` for `i` in `0..<count`, concurrently when `count > 1`; returns when all are done.
    /// Callers guarantee that iterations touch disjoint memory.
    /// - Parameters:
    ///   - count: number of iterations.
    ///   - body: the work of one iteration.
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        WorkerPool.shared.run(count, body)
    }

    /// Starts the worker threads now rather than in the first loop, which would otherwise pay for it
    /// (about 5 ms in a simulation's first round here). Later calls do nothing.
    public static func startWorkers() {
        _ = WorkerPool.shared
    }
}

extension Parallel {
    /// Splits `0..<count` into at most `ways` contiguous ranges of near-equal size (at least `minimum`
    /// elements each) and calls `body(range)` for them concurrently.
    public static func forEachRange(_ count: Int, ways: Int, minimum: Int = 4096, _ body: (Range<Int>) -> Void) {
        let parts = max(1, min(ways, count / max(1, minimum)))
        forEach(parts) { p in
            let start = count * p / parts
            let end = count * (p + 1) / parts
            body(start..<end)
        }
    }
}

extension Parallel {
    /// `body(i)` for `i` in `0..<count`, computed concurrently, returned in index order.
    /// Callers guarantee that iterations touch disjoint memory besides their own result.
    public static func map<T>(_ count: Int, _ body: (Int) -> T) -> [T] {
        guard count > 0 else { return [] }
        let slots = UnsafeMutableBufferPointer<T>.allocate(capacity: count)
        defer { slots.deallocate() }
        let out = ResultSlots(slots)
        // Each iteration initializes only its own slot; forEach joins them all before the slots are read.
        forEach(count) { i in (out.slots.baseAddress! + i).initialize(to: body(i)) }
        let results = Array(slots)
        _ = slots.deinitialize()
        return results
    }
}

/// Result slots written by parallel iterations.
///
/// @unchecked Sendable: iteration `i` writes slot `i` only, and ``Parallel/forEach(_:_:)`` joins every
/// iteration before the slots are read.
private struct ResultSlots<T>: @unchecked Sendable {
    let slots: UnsafeMutableBufferPointer<T>
    init(_ slots: UnsafeMutableBufferPointer<T>) { self.slots = slots }
}

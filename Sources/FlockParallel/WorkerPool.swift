import Dispatch
import Foundation
import Synchronization

/// A fixed set of worker threads that run the iterations of parallel loops beside the thread that asks.
///
/// Why not `DispatchQueue.concurrentPerform`: on this project's Linux machines libdispatch takes about a
/// millisecond to bring an idle pool thread back (measured: after 2 ms idle, the second of two 1 ms
/// iterations started 0.93 ms late, so the pair ran one after the other), while a thread waiting on a
/// semaphore wakes in about 5 µs. Federated rounds run many short parallel steps with idle gaps between
/// them, so each paid that millisecond. Here the workers wait on a semaphore.
///
/// The calling thread always takes iterations itself, so a loop finishes even when every worker is busy:
/// calls may nest (an iteration may run a parallel loop of its own) and may come from many threads at
/// once. Iterations are handed out one at a time from a shared counter, in no fixed order or thread.
public final class WorkerPool: Sendable {
    /// The pool every ``Parallel`` loop uses: one worker per processor beside the caller.
    public static let shared = WorkerPool(workers: max(0, ProcessInfo.processInfo.activeProcessorCount - 1))

    /// Number of worker threads (the caller makes one more).
    public let workers: Int
    /// Signalled once per worker wanted; a worker that wakes to no work waits again.
    private let wake = DispatchSemaphore(value: 0)
    /// Loops with iterations not yet handed out, oldest first.
    private let open = Mutex<[Loop]>([])

    /// Starts `workers` threads that live as long as the process.
    public init(workers: Int) {
        self.workers = workers
        for index in 0..<workers {
            let thread = Thread { [self] in serve() }
            thread.name = "flock-worker-\(index)"
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    /// Calls `body(i)` for every `i` in `0..<count` on this thread and any free workers; returns when all
    /// are done. Callers guarantee that iterations touch disjoint memory.
    public func run(_ count: Int, _ body: (Int) -> Void) {
        guard count > 1, workers > 0 else {
            for i in 0..<count { body(i) }
            return
        }
        withoutActuallyEscaping(body) { body in
            let loop = Loop(count: count, body: body)
            open.withLock { $0.append(loop) }
            for _ in 0..<min(count - 1, workers) { wake.signal() }
            loop.work()
            open.withLock { loops in loops.removeAll { $0 === loop } }
            loop.waitUntilDone()
        }
    }

    /// A worker's life: wait to be woken, then help with open loops until none has iterations left.
    private func serve() {
        while true {
            wake.wait()
            while let loop = open.withLock({ loops in loops.first { !$0.isHandedOut } }) {
                loop.work()
            }
        }
    }
}

/// One parallel loop: a counter hands out iterations; the last to finish tells the caller.
///
/// @unchecked Sendable: `body` is only called for an index taken from `next`, each exactly once, and the
/// caller drops it only after `remaining` reached zero, that is after every call returned; so no thread
/// calls it after ``waitUntilDone()`` (workers may still hold the loop, but only look at `next` then).
private final class Loop: @unchecked Sendable {
    let count: Int
    private let next = Atomic<Int>(0)
    private let remaining: Atomic<Int>
    private let finished = DispatchSemaphore(value: 0)
    private var body: ((Int) -> Void)?

    init(count: Int, body: @escaping (Int) -> Void) {
        self.count = count
        remaining = Atomic(count)
        self.body = body
    }

    /// Whether every iteration has been taken by some thread.
    var isHandedOut: Bool { next.load(ordering: .relaxed) >= count }

    /// Takes and runs iterations until none is left.
    func work() {
        while true {
            let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
            guard i < count else { return }
            call(i)
            if remaining.wrappingSubtract(1, ordering: .acquiringAndReleasing).newValue == 0 { finished.signal() }
        }
    }

    /// Runs one iteration; not inlined, so the closure's retain ends before the iteration is counted done.
    @inline(never)
    private func call(_ i: Int) { body.unsafelyUnwrapped(i) }

    /// Waits for the last iteration, then drops the body (before `withoutActuallyEscaping` checks it).
    func waitUntilDone() {
        finished.wait()
        body = nil
    }
}

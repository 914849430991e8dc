import FlockParallel
import Foundation
import Synchronization
import Testing

/// The worker pool behind every parallel loop: each iteration exactly once, nesting, many callers.
@Suite struct WorkerPoolTests {
    @Test(arguments: [0, 1, 2, 3, 17, 1_000])
    func everyIterationRunsExactlyOnce(count: Int) {
        let hits = Mutex([Int](repeating: 0, count: count))
        WorkerPool.shared.run(count) { i in hits.withLock { $0[i] += 1 } }
        #expect(hits.withLock { $0.allSatisfy { $0 == 1 } })
    }

    @Test func iterationsRunOnMoreThanOneThreadWhenTheyCan() {
        // Each iteration waits (up to a second) until another thread has run one: with a worker beside the
        // caller, two threads take part.
        let pool = WorkerPool(workers: 1)
        let threads = Mutex<Set<String>>([])
        pool.run(2) { _ in
            threads.withLock { _ = $0.insert("\(pthread_self())") }
            let deadline = Date().addingTimeInterval(1)
            while threads.withLock({ $0.count }) < 2, Date() < deadline { usleep(100) }
        }
        #expect(threads.withLock { $0.count } == 2)
    }

    @Test func aPoolWithoutWorkersRunsOnTheCaller() {
        let pool = WorkerPool(workers: 0)
        var order: [Int] = []
        pool.run(5) { order.append($0) }
        #expect(order == [0, 1, 2, 3, 4])
    }

    @Test func nestedLoopsAndConcurrentCallersFinish() {
        // Loops inside loops, started from several threads at once, while the one worker is busy: every
        // caller takes iterations itself, so nothing waits on a worker that never comes.
        let pool = WorkerPool(workers: 1)
        let total = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            pool.run(8) { _ in
                pool.run(8) { _ in total.withLock { $0 += 1 } }
            }
        }
        #expect(total.withLock { $0 } == 4 * 8 * 8)
    }

    @Test func resultsWrittenByIterationsAreSeenByTheCaller() {
        let count = 10_000
        let out = UnsafeMutableBufferPointer<Int>.allocate(capacity: count)
        defer { out.deallocate() }
        out.initialize(repeating: 0)
        nonisolated(unsafe) let slots = out
        WorkerPool.shared.run(count) { i in slots[i] = i * i }
        #expect(out.enumerated().allSatisfy { $0.element == $0.offset * $0.offset })
    }
}

import FlockServer

/// One simulation worker's float buffers for the group sums it forms in a round
/// (``WeightedAverage/formGroupSum(differences:from:examples:into:)``), allocated once per run.
///
/// A worker writes each group's float sum (one model's worth of floats) into the next free slot instead of
/// adding it to a fixed-point sum of doubles (twice the bytes, read and written per group); the slots of
/// all workers are added in one pass over the parameters, split over the threads, when the round's
/// training is done. A worker whose slots are full adds them to its own sum and starts again.
final class GroupSumSlots {
    /// Values in each slot (the model's parameters).
    let length: Int
    /// Number of slots.
    let capacity: Int
    /// The groups whose sums the slots hold, in slot order.
    private(set) var filled: [(examples: Int, updates: Int)] = []
    private let storage: UnsafeMutableBufferPointer<Float>

    /// Slots for `length` values each: as many as fit in `budgetBytes`, between 1 and 8.
    init(length: Int, budgetBytes: Int) {
        self.length = length
        capacity = max(1, min(8, budgetBytes / max(1, length * MemoryLayout<Float>.stride)))
        storage = .allocate(capacity: capacity * length)
        storage.initialize(repeating: 0)
    }

    deinit { storage.deallocate() }

    /// Whether every slot holds a group sum.
    var isFull: Bool { filled.count == capacity }

    /// Forms the next group's sum in the next free slot.
    /// - Precondition: not ``isFull``.
    func form(differences locals: [UnsafeBufferPointer<Float>], from global: UnsafeBufferPointer<Float>, examples: [Int]) {
        precondition(!isFull, "no free slot")
        let slot = UnsafeMutableBufferPointer(rebasing: storage[filled.count * length..<(filled.count + 1) * length])
        WeightedAverage.formGroupSum(differences: locals, from: global, examples: examples, into: slot)
        filled.append((examples.reduce(0, +), examples.count))
    }

    /// The filled slots as group sums for ``WeightedAverage/add(groupSums:threads:)``.
    var groupSums: [(sum: UnsafeBufferPointer<Float>, examples: Int, updates: Int)] {
        filled.enumerated().map { slot, group in
            (UnsafeBufferPointer(rebasing: storage[slot * length..<(slot + 1) * length]), group.examples, group.updates)
        }
    }

    /// Frees every slot (after their sums were added).
    func empty() { filled.removeAll(keepingCapacity: true) }
}

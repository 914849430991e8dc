import FlockServer

/// One simulation worker's float buffers for the group sums it forms in a round, allocated once per run.
///
/// A worker adds each trained edge's update into the group's slot (``add(difference:from:examples:)``)
/// instead of into a fixed-point sum of doubles (twice the bytes, read and written per group); the slots
/// of all workers are added in one pass over the parameters, split over the threads, when the round's
/// training is done. A worker whose slots are full adds them to its own sum and starts again.
final class GroupSumSlots {
    /// Values in each slot (the model's parameters).
    let length: Int
    /// Number of slots.
    let capacity: Int
    /// The closed groups whose sums the slots hold, in slot order, then the open group if any.
    private var groups: [(examples: Int, updates: Int)] = []
    private var isOpen = false
    private let storage: UnsafeMutableBufferPointer<Float>

    /// Slots for `length` values each: as many as fit in `budgetBytes`, between 1 and 8.
    init(length: Int, budgetBytes: Int) {
        self.length = length
        capacity = max(1, min(8, budgetBytes / max(1, length * MemoryLayout<Float>.stride)))
        storage = .allocate(capacity: capacity * length)
        storage.initialize(repeating: 0)
    }

    deinit { storage.deallocate() }

    /// Whether every slot holds a closed group sum (no group can be opened).
    var isFull: Bool { !isOpen && groups.count == capacity }

    /// Adds the update `local − global` of an edge that trained on `examples` rows to the open group,
    /// opening one in the next free slot if none is open.
    /// - Precondition: a group is open or not ``isFull``.
    func add(difference local: UnsafeBufferPointer<Float>, from global: UnsafeBufferPointer<Float>, examples: Int) {
        if !isOpen {
            precondition(groups.count < capacity, "no free slot")
            groups.append((0, 0))
        }
        let slot = groups.count - 1
        WeightedAverage.addToGroupSum(difference: local, from: global, examples: examples, into: buffer(slot), first: !isOpen)
        groups[slot].examples += examples
        groups[slot].updates += 1
        isOpen = true
    }

    /// Closes the open group, if any.
    func close() { isOpen = false }

    /// The closed groups' sums for ``WeightedAverage/add(groupSums:threads:)``.
    var groupSums: [WeightedAverage.GroupSum] {
        let closed = groups.count - (isOpen ? 1 : 0)
        return (0..<closed).map { (UnsafeBufferPointer(buffer($0)), groups[$0].examples, groups[$0].updates) }
    }

    /// Frees every slot (after their sums were added).
    func empty() {
        groups.removeAll(keepingCapacity: true)
        isOpen = false
    }

    private func buffer(_ slot: Int) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(rebasing: storage[slot * length..<(slot + 1) * length])
    }
}

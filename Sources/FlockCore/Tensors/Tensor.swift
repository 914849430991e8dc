/// A dense Float32 tensor in contiguous row-major storage: the value type FlockCore shows at its API
/// (inputs to and outputs of a model). Layers work on raw buffers inside a ``Model``.
public struct Tensor: Sendable, Equatable {
    /// The extent of each dimension, outermost first.
    public var shape: [Int]
    /// The elements, row-major; `scalars.count == shape.reduce(1, *)`.
    public var scalars: [Float]

    /// Creates a tensor from its shape and elements.
    /// - Precondition: the element count matches the shape.
    public init(shape: [Int], scalars: [Float]) {
        precondition(shape.allSatisfy { $0 >= 0 } && shape.reduce(1, *) == scalars.count, "shape does not match element count")
        self.shape = shape
        self.scalars = scalars
    }

    /// A tensor of zeros.
    public init(zeros shape: [Int]) {
        self.init(shape: shape, scalars: [Float](repeating: 0, count: shape.reduce(1, *)))
    }

    /// Number of elements.
    public var count: Int { scalars.count }

    /// The element at a multi-index.
    public subscript(_ index: Int...) -> Float {
        get { scalars[offset(index)] }
        set { scalars[offset(index)] = newValue }
    }

    private func offset(_ index: [Int]) -> Int {
        precondition(index.count == shape.count, "index rank does not match tensor rank")
        var o = 0
        for (i, d) in zip(index, shape) {
            precondition(i >= 0 && i < d, "index out of range")
            o = o * d + i
        }
        return o
    }
}

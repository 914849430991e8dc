/// What a run's codec keeps from round to round, in the form a checkpoint saves: the quantizer's block
/// ranges under secure aggregation, the server's FetchSGD sketches, and each edge's `topk` error feedback.
/// Without it, a run resumed after a crash would start its ranges over, forget the error sketch's
/// coordinates not applied yet, and drop what each edge had not sent.
///
/// Saved as named Float32 sections (`codec.ranges`, `codec.fetch.momentum`, `codec.fetch.error`,
/// `codec.feedback.residual.ID`, `codec.feedback.momentum.ID`) and integer counters
/// (`codec.feedback.participations.ID`).
public struct CodecState: Sendable {
    /// Block ranges of the next secure round (nil: the initial range).
    public var ranges: [Float]?
    /// The server's FetchSGD state (nil before the first sketched round).
    public var fetch: FetchSGDState?
    /// Each edge's error feedback, by edge id.
    public var feedback: [String: ErrorFeedback]

    /// A state.
    public init(ranges: [Float]? = nil, fetch: FetchSGDState? = nil, feedback: [String: ErrorFeedback] = [:]) {
        self.ranges = ranges
        self.fetch = fetch
        self.feedback = feedback
    }

    private static let prefix = "codec."

    /// The Float32 sections to save.
    public var sections: [String: [Float]] {
        var out = [String: [Float]]()
        if let ranges { out[Self.prefix + "ranges"] = ranges }
        if let fetch {
            out[Self.prefix + "fetch.momentum"] = fetch.accumulatedMomentum
            out[Self.prefix + "fetch.error"] = fetch.accumulatedError
        }
        for (id, state) in feedback {
            out[Self.prefix + "feedback.residual." + id] = state.residual
            out[Self.prefix + "feedback.momentum." + id] = state.momentum
        }
        return out
    }

    /// The counters to save.
    public var counters: [String: Int] {
        Dictionary(uniqueKeysWithValues: feedback.map { (Self.prefix + "feedback.participations." + $0.key, $0.value.participations) })
    }

    /// Whether a section or counter name belongs to a codec state.
    public static func owns(_ name: String) -> Bool { name.hasPrefix(prefix) }

    /// The state saved as `sections` and `counters` by a run of `spec` over updates of `length` values.
    /// - Throws: ``CodecError`` for sections that do not fit the codec or do not pair up.
    public init(sections: [String: [Float]], counters: [String: Int], spec: CodecSpec, length: Int) throws(CodecError) {
        self.init()
        ranges = sections[Self.prefix + "ranges"]
        if let ranges, !ranges.allSatisfy({ $0.isFinite && $0 > 0 }) { throw CodecError("saved block ranges that are not positive") }
        if let momentum = sections[Self.prefix + "fetch.momentum"], let error = sections[Self.prefix + "fetch.error"] {
            fetch = try FetchSGDState(restoring: spec, length: length, momentum: momentum, error: error)
        }
        let residualPrefix = Self.prefix + "feedback.residual."
        for (name, residual) in sections where name.hasPrefix(residualPrefix) {
            let id = String(name.dropFirst(residualPrefix.count))
            guard let momentum = sections[Self.prefix + "feedback.momentum." + id],
                  let participations = counters[Self.prefix + "feedback.participations." + id], residual.count == length else {
                throw CodecError("the saved error feedback of \(id) is incomplete or of the wrong length")
            }
            feedback[id] = try ErrorFeedback(residual: residual, momentum: momentum, participations: participations)
        }
    }
}

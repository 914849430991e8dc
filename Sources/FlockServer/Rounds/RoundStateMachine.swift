import FlockCore

/// The server's life cycle of one federated round as a pure state machine: no I/O, no clock of its own
/// (time comes in with each event), so it is driven the same way by the network server and by the
/// in-process simulation, and tested without sockets.
///
/// A round selects its target number of edges plus an over-selection margin (Bonawitz et al. 2019,
/// "Towards Federated Learning at Scale": over-selecting lets a round survive stragglers), accepts one
/// update per selected edge, and closes as soon as the target has reported. At the deadline it
/// aggregates if at least `minimumUpdates` arrived and fails otherwise. Reports for a closed or unknown
/// round, from an edge that was not selected, or a second report from the same edge are refused with a
/// typed error and change nothing.
public struct RoundStateMachine: Sendable {
    /// How rounds are sized and timed.
    public struct Configuration: Sendable, Equatable {
        /// Updates that close the round early.
        public var target: Int
        /// Fewest updates worth aggregating at the deadline.
        public var minimumUpdates: Int
        /// Extra share of edges selected beyond the target (0.3 = 30% more).
        public var overSelection: Double
        /// Seconds from the plan to the deadline.
        public var timeout: Double

        /// Creates a configuration.
        public init(target: Int, minimumUpdates: Int, overSelection: Double = 0.3, timeout: Double = 600) {
            self.target = target
            self.minimumUpdates = minimumUpdates
            self.overSelection = overSelection
            self.timeout = timeout
        }

        /// Edges to select when `available` are eligible: target plus the margin, at most all of them.
        public func selectionSize(available: Int) -> Int {
            min(available, Int((Double(target) * (1 + overSelection)).rounded(.up)))
        }
    }

    /// Where the round stands.
    public enum State: Sendable, Equatable {
        /// No round is open.
        case idle
        /// Plans were sent; updates are being collected until `deadline`.
        case collecting(round: Int, selected: Set<String>, reported: Set<String>, deadline: Double)
        /// Enough updates arrived; the caller aggregates them.
        case aggregating(round: Int, reported: Set<String>)
        /// The round ended with an aggregate.
        case completed(round: Int, participants: Int)
        /// The round ended without one (too few updates by the deadline).
        case failed(round: Int, reported: Int)
    }

    /// What happened to the machine.
    public enum Event: Sendable, Equatable {
        /// Open round `round` with these eligible edges (the caller chose them) at time `now`.
        case open(round: Int, selected: [String], now: Double)
        /// Edge `edge` delivered its update for `round`.
        case update(round: Int, edge: String, now: Double)
        /// Edge `edge` is gone (disconnected, timed out).
        case edgeLost(edge: String, now: Double)
        /// Time passed.
        case tick(now: Double)
        /// The caller finished aggregating.
        case aggregated(round: Int)
    }

    /// What the caller must do now.
    public enum Action: Sendable, Equatable {
        /// Nothing.
        case none
        /// Keep the update just received (it counts toward the round).
        case accept
        /// Aggregate the accepted updates of `round` and report back with ``Event/aggregated(round:)``.
        case aggregate(round: Int)
        /// Discard the accepted updates of `round`: it failed.
        case abandon(round: Int, reason: String)
    }

    /// Why an event was refused.
    public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        /// The kind of refusal.
        public enum Kind: Sendable, Equatable {
            case unknownRound, roundClosed, notSelected, duplicate, roundAlreadyOpen, emptySelection
        }
        /// The kind.
        public var kind: Kind
        /// A message for logs and for the edge.
        public var message: String
        public var description: String { message }
    }

    /// Sizing and timing.
    public let configuration: Configuration
    /// Current state.
    public private(set) var state: State = .idle

    /// Creates an idle machine.
    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    /// Feeds one event.
    /// - Returns: what the caller must do.
    /// - Throws: ``Refusal`` for an event that does not fit the state; the state is unchanged then.
    public mutating func receive(_ event: Event) throws(Refusal) -> Action {
        switch (state, event) {
        case (.collecting, .open(let round, _, _)), (.aggregating, .open(let round, _, _)):
            throw Refusal(kind: .roundAlreadyOpen, message: "cannot open round \(round): another round is still open")
        case (_, .open(let round, let selected, let now)):
            guard !selected.isEmpty else { throw Refusal(kind: .emptySelection, message: "round \(round): no edges selected") }
            state = .collecting(round: round, selected: Set(selected), reported: [], deadline: now + configuration.timeout)
            return .none

        case (.collecting(let current, let selected, var reported, let deadline), .update(let round, let edge, let now)):
            guard round == current else {
                throw Refusal(kind: round < current ? .roundClosed : .unknownRound, message: "update for round \(round), but round \(current) is open")
            }
            guard selected.contains(edge) else { throw Refusal(kind: .notSelected, message: "edge \(edge) was not selected for round \(round)") }
            guard !reported.contains(edge) else { throw Refusal(kind: .duplicate, message: "edge \(edge) already reported for round \(round)") }
            guard now <= deadline else {
                throw Refusal(kind: .roundClosed, message: "update for round \(round) arrived after its deadline")
            }
            reported.insert(edge)
            // The target is reached, or every edge still in the round has reported (the others were lost).
            if reported.count >= configuration.target || (reported.count == selected.count && reported.count >= configuration.minimumUpdates) {
                state = .aggregating(round: current, reported: reported)
            } else {
                state = .collecting(round: current, selected: selected, reported: reported, deadline: deadline)
            }
            return .accept
        case (_, .update(let round, let edge, _)):
            throw Refusal(kind: .roundClosed, message: "edge \(edge): round \(round) is not collecting updates")

        case (.collecting(let current, var selected, let reported, let deadline), .edgeLost(let edge, let now)):
            guard !reported.contains(edge), selected.contains(edge) else { return .none }
            selected.remove(edge)
            state = .collecting(round: current, selected: selected, reported: reported, deadline: deadline)
            // Nobody left to wait for: settle now rather than at the deadline.
            if selected.count == reported.count { return settle(now: now, force: true) }
            return .none
        case (_, .edgeLost):
            return .none

        case (.collecting(_, let selected, let reported, _), .tick(let now)):
            // Nobody left to wait for: settle now rather than at the deadline.
            return settle(now: now, force: selected.count == reported.count)
        case (.aggregating(let current, _), .tick):
            return .aggregate(round: current)
        case (_, .tick):
            return .none

        case (.aggregating(let current, let reported), .aggregated(let round)) where round == current:
            state = .completed(round: current, participants: reported.count)
            return .none
        case (_, .aggregated(let round)):
            throw Refusal(kind: .unknownRound, message: "round \(round) is not being aggregated")
        }
    }

    /// The action for the state after an accepted update: aggregate once the target is reached.
    public var pendingAction: Action {
        if case .aggregating(let round, _) = state { return .aggregate(round: round) }
        return .none
    }

    private mutating func settle(now: Double, force: Bool) -> Action {
        guard case .collecting(let round, _, let reported, let deadline) = state, force || now >= deadline else { return .none }
        if reported.count >= configuration.minimumUpdates {
            state = .aggregating(round: round, reported: reported)
            return .aggregate(round: round)
        }
        state = .failed(round: round, reported: reported.count)
        return .abandon(round: round, reason: "\(reported.count) of the required \(configuration.minimumUpdates) updates arrived")
    }
}

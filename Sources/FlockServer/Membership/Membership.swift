import FlockCore
import FlockWire

/// Who is in the federation and who may be selected: registration, heartbeats, timeouts, eligibility,
/// selection, and pace steering. A pure value (time comes in with each call) that the server's actor owns.
///
/// Pace steering follows Bonawitz et al. 2019, "Towards Federated Learning at Scale: System Design", §2.3:
/// an edge that is not selected is told when to come back, with a window that grows with how many edges
/// are waiting relative to how many a round needs, and a random position inside it, so that thousands of
/// idle edges spread their check-ins instead of polling in lockstep.
public struct Membership: Sendable {
    /// What the server knows of one edge.
    public struct Edge: Sendable, Equatable {
        /// Stable id chosen by the operator.
        public let id: String
        /// Session token of the current registration.
        public let session: String
        /// Training rows the edge says it holds.
        public var examples: Int
        /// Time of the last contact.
        public var lastSeen: Double
        /// The round the edge is working on, if any.
        public var round: Int?
        /// Rounds it took part in.
        public var participated: Int
        /// Why the edge left its last round at once (its data does not fit the model, …): it is not selected
        /// again until it registers anew. Nil for an edge that may be selected.
        public var declined: String? = nil
    }

    /// Why a call was refused.
    public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        /// A message for the edge and the logs.
        public let message: String
        public var description: String { message }
    }

    /// Seconds without contact after which an edge counts as gone.
    public let timeout: Double
    /// All edges that ever registered, by id.
    public private(set) var edges: [String: Edge] = [:]

    /// Creates an empty membership.
    public init(timeout: Double = 60) { self.timeout = timeout }

    /// Registers an edge, or re-registers it under the same id with a new session.
    /// - Throws: ``Refusal`` for an id outside 1-128 bytes of `[A-Za-z0-9._-]` or a negative count.
    public mutating func register(id: String, examples: Int, session: String, now: Double) throws(Refusal) -> Edge {
        guard WireLimits.isValidEdgeId(id) else {
            throw Refusal(message: "edge ids are 1-\(WireLimits.maximumEdgeIdBytes) characters of A-Z, a-z, 0-9, '.', '_' and '-'")
        }
        guard examples >= 0 else { throw Refusal(message: "an edge cannot hold \(examples) examples") }
        // An edge that registers again while selected (its process restarted, or the server's did) stays in
        // its round: the round still counts on its update.
        let edge = Edge(
            id: id, session: session, examples: examples, lastSeen: now, round: edges[id]?.round,
            participated: edges[id]?.participated ?? 0)
        edges[id] = edge
        return edge
    }

    /// Holds places for the edges of a round restored after a server restart: they count as selected and
    /// seen `now`, so they have one edge timeout to register again before the round drops them. They have
    /// no session until they register.
    public mutating func expect(_ ids: [String], round: Int, now: Double) {
        for id in ids where edges[id] == nil {
            edges[id] = Edge(id: id, session: "", examples: 0, lastSeen: now, round: round, participated: 0)
        }
    }

    /// Records a heartbeat.
    /// - Throws: ``Refusal`` for an unknown edge or a stale session (the edge must register again).
    public mutating func heartbeat(id: String, session: String, now: Double) throws(Refusal) {
        guard var edge = edges[id] else { throw Refusal(message: "edge \(id) is not registered") }
        guard !edge.session.isEmpty, edge.session == session else { throw Refusal(message: "edge \(id): session expired; register again") }
        edge.lastSeen = max(edge.lastSeen, now)
        edges[id] = edge
    }

    /// Marks an edge as heard from now (an edge held in a long poll is in contact the whole time).
    public mutating func touch(_ id: String, now: Double) {
        if let seen = edges[id]?.lastSeen { edges[id]?.lastSeen = max(seen, now) }
    }

    /// True when the edge has been heard from within ``timeout``.
    public func isConnected(_ id: String, now: Double) -> Bool {
        guard let edge = edges[id] else { return false }
        return now - edge.lastSeen <= timeout
    }

    /// Ids of edges that may be selected: connected, not in a round and not declined, sorted.
    public func eligible(now: Double) -> [String] {
        edges.values.filter { $0.round == nil && $0.declined == nil && now - $0.lastSeen <= timeout }.map(\.id).sorted()
    }

    /// Takes an edge out of its round because it cannot take part, and out of selection until it registers
    /// again (a new registration may come with other data).
    public mutating func decline(_ id: String, reason: String) {
        edges[id]?.round = nil
        edges[id]?.declined = reason
    }

    /// Forgets an edge that said it leaves (it shuts down): it is no longer a member, and its session ends.
    public mutating func leave(_ id: String) {
        edges[id] = nil
    }

    /// Forgets edges not heard from for `silence` seconds and not in a round: ids that registered once and never
    /// came back do not accumulate.
    /// - Returns: how many were forgotten.
    @discardableResult
    public mutating func prune(silentFor silence: Double, now: Double) -> Int {
        let gone = edges.values.filter { $0.round == nil && now - $0.lastSeen > silence }.map(\.id)
        for id in gone { edges[id] = nil }
        return gone.count
    }

    /// Ids of connected edges.
    public func connected(now: Double) -> [String] {
        edges.values.filter { now - $0.lastSeen <= timeout }.map(\.id).sorted()
    }

    /// Selects up to `count` eligible edges with a seeded sample and marks them as in `round`. Edges in
    /// `preferred` (those checked in and waiting right now, which hear of the round at once) are drawn
    /// first, the others only to fill up.
    public mutating func select(
        _ count: Int, round: Int, now: Double, preferring preferred: Set<String> = [], using rng: inout SeededGenerator
    ) -> [String] {
        let all = eligible(now: now)
        var first = all.filter { preferred.contains($0) }
        var rest = all.filter { !preferred.contains($0) }
        rng.shuffle(&first)
        rng.shuffle(&rest)
        let chosen = Array((first + rest).prefix(max(0, count))).sorted()
        for id in chosen {
            edges[id]?.round = round
            edges[id]?.participated += 1
        }
        return chosen
    }

    /// Frees the edges of a finished or abandoned round.
    public mutating func release(round: Int) {
        for (id, edge) in edges where edge.round == round { edges[id]?.round = nil }
    }

    /// When an unselected edge should come back, in seconds: a window of `roundSeconds` times the ratio of
    /// waiting edges to needed edges (at least one round, at most `maximum`), at a random point inside it.
    /// - Parameters:
    ///   - waiting: eligible edges not selected.
    ///   - needed: edges a round selects.
    ///   - roundSeconds: expected duration of a round.
    public static func retryAfter(
        waiting: Int, needed: Int, roundSeconds: Double, maximum: Double = 3600, using rng: inout SeededGenerator
    ) -> Double {
        let ratio = Double(max(1, waiting)) / Double(max(1, needed))
        let window = min(maximum, max(roundSeconds, roundSeconds * ratio))
        return window * (0.5 + 0.5 * rng.nextUnit())
    }
}

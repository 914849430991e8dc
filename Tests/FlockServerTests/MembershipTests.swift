import FlockCore
import FlockServer
import Testing

/// Registration, heartbeats and timeouts, eligibility and selection, and pace steering.
@Suite struct MembershipTests {
    static func members(_ count: Int, now: Double = 0) throws -> Membership {
        var m = Membership(timeout: 30)
        for i in 0..<count { _ = try m.register(id: "edge-\(i)", examples: 100 + i, session: "s\(i)", now: now) }
        return m
    }

    @Test func heartbeatsKeepEdgesConnectedAndSilenceMakesThemGone() throws {
        var m = try Self.members(3)
        try m.heartbeat(id: "edge-0", session: "s0", now: 25)
        #expect(m.connected(now: 40) == ["edge-0"])
        #expect(!m.isConnected("edge-1", now: 31))
        #expect(m.isConnected("edge-1", now: 30))
    }

    @Test func refusals() throws {
        var m = try Self.members(1)
        for bad in ["", "a b", "edge/1", String(repeating: "x", count: 129)] {
            #expect(throws: Membership.Refusal.self) { try m.register(id: bad, examples: 1, session: "s", now: 0) }
        }
        #expect(throws: Membership.Refusal.self) { try m.heartbeat(id: "nobody", session: "s", now: 1) }
        #expect(throws: Membership.Refusal.self) { try m.heartbeat(id: "edge-0", session: "old", now: 1) }
        // Re-registering under the same id replaces the session and keeps the participation count.
        _ = try m.register(id: "edge-0", examples: 5, session: "new", now: 2)
        #expect(throws: Membership.Refusal.self) { try m.heartbeat(id: "edge-0", session: "s0", now: 3) }
        try m.heartbeat(id: "edge-0", session: "new", now: 3)
    }

    @Test func selectionTakesOnlyEligibleEdgesAndIsSeeded() throws {
        var m = try Self.members(10)
        var rng = SeededGenerator(seed: 1)
        let first = m.select(4, round: 1, now: 1, using: &rng)
        #expect(first.count == 4)
        #expect(Set(m.eligible(now: 1)).isDisjoint(with: first))
        let second = m.select(10, round: 2, now: 1, using: &rng)
        #expect(second.count == 6)
        #expect(Set(first).isDisjoint(with: second))
        m.release(round: 1)
        #expect(m.eligible(now: 1) == first)
        // Same seed, same membership: same selection.
        var a = try Self.members(10), b = try Self.members(10)
        var ra = SeededGenerator(seed: 9), rb = SeededGenerator(seed: 9)
        #expect(a.select(5, round: 1, now: 0, using: &ra) == b.select(5, round: 1, now: 0, using: &rb))
        // Gone edges are never selected.
        var c = try Self.members(3)
        try c.heartbeat(id: "edge-2", session: "s2", now: 100)
        var rc = SeededGenerator(seed: 2)
        #expect(c.select(3, round: 1, now: 100, using: &rc) == ["edge-2"])
    }

    @Test func paceSteeringSpreadsCheckInsOverAWindowThatGrowsWithTheQueue() {
        var rng = SeededGenerator(seed: 4)
        let few = (0..<1000).map { _ in Membership.retryAfter(waiting: 10, needed: 10, roundSeconds: 20, using: &rng) }
        let many = (0..<1000).map { _ in Membership.retryAfter(waiting: 1000, needed: 10, roundSeconds: 20, using: &rng) }
        #expect(few.allSatisfy { $0 >= 10 && $0 <= 20 })
        #expect(many.allSatisfy { $0 >= 1000 && $0 <= 2000 })
        // Spread, not lockstep: check-ins of a large fleet cover the window.
        let buckets = Set(many.map { Int(($0 - 1000) / 100) })
        #expect(buckets.count == 10)
        #expect(Membership.retryAfter(waiting: 1_000_000, needed: 1, roundSeconds: 60, using: &rng) <= 3600)
    }
}

import FlockServer
import Testing

/// The round life cycle without sockets or clocks: closing at the target, deadlines, refusals.
@Suite struct RoundStateMachineTests {
    typealias Machine = RoundStateMachine
    static let config = Machine.Configuration(target: 3, minimumUpdates: 2, overSelection: 0.3, timeout: 10)

    static func opened(_ edges: [String] = ["a", "b", "c", "d"]) throws -> Machine {
        var m = Machine(configuration: config)
        #expect(try m.receive(.open(round: 1, selected: edges, now: 0)) == Machine.Action.none)
        return m
    }

    @Test func overSelectionAddsThirtyPercentRoundedUp() {
        #expect(Self.config.selectionSize(available: 100) == 4)
        #expect(Self.config.selectionSize(available: 2) == 2)
        #expect(Machine.Configuration(target: 10, minimumUpdates: 5).selectionSize(available: 50) == 13)
    }

    @Test func roundClosesAsSoonAsTheTargetHasReported() throws {
        var m = try Self.opened()
        #expect(try m.receive(.update(round: 1, edge: "a", now: 1)) == .accept)
        #expect(try m.receive(.update(round: 1, edge: "c", now: 2)) == .accept)
        #expect(m.pendingAction == .none)
        #expect(try m.receive(.update(round: 1, edge: "d", now: 3)) == .accept)
        #expect(m.pendingAction == .aggregate(round: 1))
        // The over-selected straggler is now late.
        #expect(throws: Machine.Refusal.self) { try m.receive(.update(round: 1, edge: "b", now: 4)) }
        #expect(try m.receive(.aggregated(round: 1)) == .none)
        #expect(m.state == .completed(round: 1, participants: 3))
    }

    @Test func deadlineWithEnoughUpdatesAggregatesWhatArrived() throws {
        var m = try Self.opened()
        _ = try m.receive(.update(round: 1, edge: "a", now: 1))
        _ = try m.receive(.update(round: 1, edge: "b", now: 2))
        #expect(try m.receive(.tick(now: 9)) == .none)
        #expect(try m.receive(.tick(now: 10)) == .aggregate(round: 1))
        _ = try m.receive(.aggregated(round: 1))
        #expect(m.state == .completed(round: 1, participants: 2))
    }

    @Test func deadlineWithTooFewUpdatesFailsTheRound() throws {
        var m = try Self.opened()
        _ = try m.receive(.update(round: 1, edge: "a", now: 1))
        guard case .abandon(round: 1, _) = try m.receive(.tick(now: 11)) else {
            Issue.record("expected the round to be abandoned")
            return
        }
        #expect(m.state == .failed(round: 1, reported: 1))
        // A failed round is retried with a fresh selection.
        #expect(try m.receive(.open(round: 2, selected: ["b", "c", "d"], now: 12)) == .none)
    }

    @Test func lostEdgesSettleTheRoundWithoutWaitingForTheDeadline() throws {
        var m = try Self.opened(["a", "b", "c"])
        _ = try m.receive(.update(round: 1, edge: "a", now: 1))
        _ = try m.receive(.update(round: 1, edge: "b", now: 1))
        #expect(try m.receive(.edgeLost(edge: "c", now: 2)) == .aggregate(round: 1))
    }

    @Test func anEdgeLostBeforeTheOthersReportDoesNotHoldTheRoundToItsDeadline() throws {
        var m = try Self.opened(["a", "b", "c"])
        #expect(try m.receive(.edgeLost(edge: "c", now: 1)) == Machine.Action.none)
        _ = try m.receive(.update(round: 1, edge: "a", now: 2))
        #expect(m.pendingAction == .none)
        // Below the target of 3, but everyone left in the round has reported.
        _ = try m.receive(.update(round: 1, edge: "b", now: 3))
        #expect(m.pendingAction == .aggregate(round: 1))
    }

    @Test func refusalsChangeNothing() throws {
        var m = try Self.opened()
        _ = try m.receive(.update(round: 1, edge: "a", now: 1))
        let before = m.state
        let cases: [(Machine.Event, Machine.Refusal.Kind)] = [
            (.update(round: 1, edge: "a", now: 2), .duplicate),
            (.update(round: 1, edge: "zz", now: 2), .notSelected),
            (.update(round: 7, edge: "b", now: 2), .unknownRound),
            (.update(round: 0, edge: "b", now: 2), .roundClosed),
            (.update(round: 1, edge: "b", now: 99), .roundClosed),
            (.open(round: 2, selected: ["a"], now: 2), .roundAlreadyOpen),
            (.aggregated(round: 1), .unknownRound),
        ]
        for (event, kind) in cases {
            do {
                _ = try m.receive(event)
                Issue.record("\(event) must be refused")
            } catch {
                #expect(error.kind == kind, "\(event): \(error)")
            }
            #expect(m.state == before)
        }
        var idle = Machine(configuration: Self.config)
        #expect(throws: Machine.Refusal.self) { try idle.receive(.update(round: 1, edge: "a", now: 0)) }
        #expect(throws: Machine.Refusal.self) { try idle.receive(.open(round: 1, selected: [], now: 0)) }
    }
}

import FlockCore
import Foundation

/// A point of a secure-aggregation round where `flock-edge run --crash-at` kills its own process with
/// SIGKILL: a failure drill that shows (and lets tests check) that the round survives an edge lost in that
/// phase, the way a phone that loses power would be lost. Nothing is flushed or said to the server.
public struct CrashPoint: Sendable, Equatable, CustomStringConvertible {
    /// Where in the round the process dies.
    public enum Phase: String, Sendable, CaseIterable {
        /// After its keys were advertised and the roster came back, before its encrypted shares are sent:
        /// the server sees it drop out in the share-keys phase.
        case shareKeys = "share-keys"
        /// After its shares were delivered and it trained, before its masked input is sent: the survivors
        /// must reveal its pairwise-mask key shares so the server can cancel its masks.
        case maskedInput = "masked-input"
    }

    /// The phase.
    public var phase: Phase
    /// The round id (as the server numbers rounds: every attempt counts).
    public var round: UInt64

    /// Creates a crash point.
    public init(phase: Phase, round: UInt64) {
        self.phase = phase
        self.round = round
    }

    /// Parses `PHASE@ROUND`, e.g. `share-keys@3`.
    /// - Throws: ``CoreError/Code/invalidArgument`` naming the accepted forms.
    public init(parsing text: String) throws(CoreError) {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        let phases = Phase.allCases.map(\.rawValue).joined(separator: " or ")
        guard parts.count == 2, let phase = Phase(rawValue: String(parts[0])), let round = UInt64(parts[1]), round >= 1 else {
            throw CoreError(.invalidArgument, "--crash-at '\(text)': use PHASE@ROUND with PHASE \(phases) and ROUND >= 1, e.g. share-keys@3")
        }
        self.init(phase: phase, round: round)
    }

    /// `PHASE@ROUND`.
    public var description: String { "\(phase.rawValue)@\(round)" }

    /// Kills this process with SIGKILL when `phase` of `round` is this point, after a line on standard error
    /// that names `edge` and says so (the only trace the drill leaves, printed even with `--quiet`).
    func fire(at phase: Phase, round: UInt64, edge: String) {
        guard phase == self.phase, round == self.round else { return }
        FileHandle.standardError.write(Data("\(edge): round \(round): --crash-at \(self): killing this process with SIGKILL\n".utf8))
        kill(getpid(), SIGKILL)
    }
}

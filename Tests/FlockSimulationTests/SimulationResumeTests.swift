import FlockCore
import FlockServer
import FlockSimulation
import FlockTestSupport
import Foundation
import Testing

/// The server's round checkpoint: a simulation killed with SIGKILL mid-run and started again resumes after
/// the last completed round and ends with exactly the result of a run that was never interrupted.
@Suite struct SimulationResumeTests {
    static let binary = TestData.executable("flock-server")
    static let arguments = [
        "simulate", "--train", TestData.path("mnist5k-train.csv"), "--eval", TestData.path("mnist5k-test.csv"),
        "--clients", "20", "--partition", "shards", "--rounds", "12", "--strategy", "fedadam", "--threads", "2", "--json",
    ]

    @Test func killedSimulationResumesToTheSameResult() throws {
        let straight = try TestData.run(Self.binary, Self.arguments)
        #expect(straight.status == 0, "\(straight.error)")
        let expected = try #require(straight.output.split(separator: "\n").last.map(String.init))

        let folder = TestData.temporaryFolder()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = Self.arguments + ["--state-dir", folder]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        var saved: RoundCheckpoint?
        while Date() < deadline {
            if let checkpoint = try? RoundCheckpoint.read(fromFolder: folder), checkpoint.model.round >= 3 {
                saved = checkpoint
                break
            }
            usleep(2_000)
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal, "the run finished before it could be killed")
        let interrupted = try #require(saved)
        #expect(interrupted.model.round < 12)

        let resumed = try TestData.run(Self.binary, Self.arguments + ["--state-dir", folder])
        #expect(resumed.status == 0, "\(resumed.error)")
        let lines = resumed.output.split(separator: "\n").map(String.init)
        // Only the rounds after the checkpoint ran again.
        let after = try #require(try RoundCheckpoint.read(fromFolder: folder))
        #expect(after.model.round == 12)
        #expect(lines.count - 1 <= 12 - interrupted.model.round)
        // The final summary (accuracy, loss, rounds) equals the uninterrupted run's; round times differ.
        let summary = try JSONSerialization.jsonObject(with: Data(lines.last!.utf8)) as? [String: Any]
        let reference = try JSONSerialization.jsonObject(with: Data(expected.utf8)) as? [String: Any]
        for key in ["accuracy", "loss", "rounds"] {
            #expect("\(summary?[key] ?? "-")" == "\(reference?[key] ?? "+")", "\(key)")
        }
    }

    @Test func aCheckpointOfAnotherStrategyIsRefused() throws {
        let folder = TestData.temporaryFolder()
        let first = try TestData.run(Self.binary, ["simulate", "--train", TestData.path("digits-train.csv"), "--eval", TestData.path("digits-test.csv"), "--model", "logreg", "--rounds", "1", "--state-dir", folder])
        #expect(first.status == 0, "\(first.error)")
        let second = try TestData.run(Self.binary, ["simulate", "--train", TestData.path("digits-train.csv"), "--eval", TestData.path("digits-test.csv"), "--model", "logreg", "--rounds", "2", "--strategy", "fedyogi", "--state-dir", folder])
        #expect(second.status == 1)
        #expect(second.error.contains("different model or strategy"), "\(second.error)")
    }

    @Test func damagedCheckpointIsRefused() throws {
        let folder = TestData.temporaryFolder()
        let model = GlobalModelState(strategy: .fedAvg, weights: [1, 2, 3])
        try RoundCheckpoint(model: model, spec: ModelSpec(inputShape: [2], classCount: 2, layers: [.dense(units: 2)]), selectionState: [1, 2, 3, 4], history: []).write(toFolder: folder)
        let read = try #require(try RoundCheckpoint.read(fromFolder: folder))
        #expect(read.model == model)
        let path = folder + "/" + RoundCheckpoint.fileName
        var bytes = TestData.bytes(path)
        bytes[bytes.count - 40] ^= 2
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(throws: CoreError.self) { try RoundCheckpoint.read(fromFolder: folder) }
    }
}

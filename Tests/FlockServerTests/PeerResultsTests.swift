import FlockCore
import FlockServer
import Foundation
import FlockTestSupport
import Testing

@Suite struct PeerResultsTests {
    static let json = """
        {
         "env": {"torch": "2.15.0+cpu", "python": "3.11.7", "logical_cpus": 2, "mkl": true},
         "rows": [
          {"threads": 1, "model": "2NN", "params": 199210, "batch": 10, "samples_per_s": 10317.8,
           "epoch_s_median": 0.3877, "epoch_s_all": [1.99, 0.33, 0.39, 0.39], "epochs": 4, "test_acc": 0.906},
          {"threads": 2, "model": "CNN", "batch": 64, "samples_per_s": 950.5, "test_acc": 0.95}
         ]
        }
        """

    @Test func readsThePeerScriptsFile() throws {
        let folder = TestData.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/torch.json"
        try Data(Self.json.utf8).write(to: URL(fileURLWithPath: path))

        let peer = try PeerResults.load(path: path)
        #expect(peer.torchVersion == "2.15.0+cpu")
        #expect(peer.rows.count == 2)
        #expect(
            peer.rows[0]
                == PeerResults.Row(
                    threads: 1,
                    model: "2NN",
                    batch: 10,
                    samplesPerSecond: 10317.8,
                    testAccuracy: 0.906,
                    epochs: 4
                )
        )
        #expect(peer.rows[1].epochs == nil)
    }

    @Test func matchesRowsByThreadsLowercasedModelAndBatch() throws {
        let peer = try PeerResults(json: Data(Self.json.utf8), source: "torch.json")
        #expect(peer.row(threads: 1, model: "2nn", batch: 10)?.samplesPerSecond == 10317.8)
        #expect(peer.row(threads: 2, model: "cnn", batch: 64)?.testAccuracy == 0.95)
        #expect(peer.row(threads: 2, model: "2nn", batch: 10) == nil)
        #expect(peer.row(threads: 1, model: "2nn", batch: 32) == nil)
        #expect(peer.row(threads: 1, model: "cnn", batch: 10) == nil)
    }

    @Test func aMissingFieldIsNamed() {
        let broken = #"{"env": {}, "rows": [{"threads": 1, "model": "2NN", "batch": 10, "test_acc": 0.9}]}"#
        #expect {
            try PeerResults(json: Data(broken.utf8), source: "torch.json")
        } throws: { error in
            guard let error = error as? CoreError else { return false }
            return error.code == .invalidData && error.message.contains("torch.json")
                && error.message.contains("rows[0].samples_per_s is missing")
        }
    }

    @Test func notJSONAndMissingFilesAreRefused() {
        #expect {
            try PeerResults(json: Data("threads,model\n".utf8), source: "torch.csv")
        } throws: { error in
            (error as? CoreError)?.code == .invalidData
        }
        #expect {
            try PeerResults.load(path: TestData.root + "/no-such-torch.json")
        } throws: { error in
            (error as? CoreError)?.code == .fileNotFound
        }
    }
}

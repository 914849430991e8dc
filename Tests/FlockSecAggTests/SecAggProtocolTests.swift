import FlockCrypto
import FlockSecAgg
import Testing

/// The four phases end to end, in memory: the unmasked sum equals the plain sum of the survivors' inputs
/// exactly, with edges dropping out in every phase; and every out-of-place message is refused.
@Suite struct SecAggProtocolTests {
    /// Drops: which edges vanish before answering each phase (0 advertise, 1 share, 2 mask, 3 unmask).
    static func run(
        configuration: SecAggConfiguration, inputs: [String: [UInt32]], drops: [Int: Set<String>]
    ) throws -> (sum: [UInt32], included: [String], server: SecAggServer) {
        var server = try SecAggServer(configuration: configuration)
        var clients = [String: SecAggClient]()
        for id in configuration.participants { clients[id] = try SecAggClient(id: id, configuration: configuration) }
        func alive(_ phase: Int) -> [String] {
            clients.keys.filter { id in !(0...phase).contains { drops[$0]?.contains(id) == true } }.sorted()
        }
        for id in alive(0) { try server.receive(try clients[id]!.advertise()) }
        let rosters = try server.closeAdvertising()
        for id in alive(1) where rosters[id] != nil {
            try server.receive(shares: try clients[id]!.shareKeys(roster: rosters[id]!), from: id)
        }
        let inbox = try server.closeSharing()
        for id in alive(2) where inbox[id] != nil {
            try server.receive(try clients[id]!.maskedInput(inputs[id]!, shares: inbox[id]!))
        }
        let requests = try server.closeMasking()
        for id in alive(3) where requests[id] != nil {
            try server.receive(try clients[id]!.unmask(requests[id]!))
        }
        let (sum, included) = try server.finish()
        return (sum, included, server)
    }

    static func plainSum(_ inputs: [String: [UInt32]], of ids: [String], length: Int) -> [UInt32] {
        var total = [UInt32](repeating: 0, count: length)
        for id in ids { for i in 0..<length { total[i] &+= inputs[id]![i] } }
        return total
    }

    @Test(arguments: [(5, true), (12, false), (40, false), (100, false)])
    func theUnmaskedSumIsExactlyTheSurvivorsSumWithDropsInEveryPhase(n: Int, complete: Bool) throws {
        var rng = SystemRandomNumberGenerator()
        let ids = (0..<n).map { "edge-\($0)" }
        let length = n == 40 ? 200_000 : (n >= 100 ? 2_000 : 20_000)
        let configuration = SecAggConfiguration.make(round: 7, participants: ids, vectorLength: length, complete: complete, graphSeed: 42)
        // The last word is the example count, summed securely with the update.
        var inputs = [String: [UInt32]]()
        for id in ids {
            var words = (0..<length).map { _ in UInt32.random(in: 0...UInt32.max, using: &rng) }
            words[length - 1] = UInt32.random(in: 1...500, using: &rng)
            inputs[id] = words
        }
        // One edge drops in each phase. Drawn again until every neighbourhood keeps the threshold (with more
        // drops in one neighbourhood the round must abort, which the next test checks).
        var drops = [Int: Set<String>]()
        repeat {
            let shuffled = ids.shuffled(using: &rng)
            drops = n >= 12 ? [0: [shuffled[0]], 1: [shuffled[1]], 2: [shuffled[2]], 3: [shuffled[3]]] : [2: [shuffled[0]]]
        } while ids.contains { id in
            let gone = drops.values.reduce(Set<String>()) { $0.union($1) }
            return Set(configuration.neighbours(of: id) + [id]).subtracting(gone).count < configuration.threshold
        }
        let (sum, included, server) = try Self.run(configuration: configuration, inputs: inputs, drops: drops)
        let expectedIncluded = ids.filter { id in ![0, 1, 2].contains { drops[$0]?.contains(id) == true } }.sorted()
        #expect(included == expectedIncluded)
        #expect(sum == Self.plainSum(inputs, of: included, length: length))
        #expect(sum[length - 1] == included.reduce(UInt32(0)) { $0 &+ inputs[$1]![length - 1] })
        #expect(server.droppedPerPhase == (n >= 12 ? [1, 1, 1, 1] : [0, 0, 1, 0]))
        if !complete { #expect(configuration.neighbourCount < n - 1 && configuration.neighbourCount % 2 == 0) }
    }

    @Test func tooFewSurvivorsAbortsAndNothingIsAggregated() throws {
        let ids = (0..<6).map { "e\($0)" }
        let configuration = SecAggConfiguration.make(round: 1, participants: ids, vectorLength: 8, complete: true)
        #expect(configuration.threshold == 4)
        let inputs = Dictionary(uniqueKeysWithValues: ids.map { ($0, [UInt32](repeating: 1, count: 8)) })
        #expect(throws: SecAggError.self) { try Self.run(configuration: configuration, inputs: inputs, drops: [2: ["e0", "e1", "e2"]]) }
        // Enough masked inputs, but too few answers to unmask.
        #expect(throws: SecAggError.self) { try Self.run(configuration: configuration, inputs: inputs, drops: [3: ["e0", "e1", "e2"]]) }
    }

    @Test func oneMaskedInputLooksUniform() throws {
        let ids = (0..<4).map { "e\($0)" }
        let length = 65_536
        let configuration = SecAggConfiguration.make(round: 3, participants: ids, vectorLength: length, complete: true)
        var server = try SecAggServer(configuration: configuration)
        var clients = try ids.map { try SecAggClient(id: $0, configuration: configuration) }
        for i in clients.indices { try server.receive(try clients[i].advertise()) }
        let rosters = try server.closeAdvertising()
        for i in clients.indices { try server.receive(shares: try clients[i].shareKeys(roster: rosters[ids[i]]!), from: ids[i]) }
        let inbox = try server.closeSharing()
        // An all-zero input: what the server sees is the mask alone. Chi-square over 256 buckets of the top byte.
        let masked = try clients[0].maskedInput([UInt32](repeating: 0, count: length), shares: inbox[ids[0]]!)
        var counts = [Int](repeating: 0, count: 256)
        for w in masked.words { counts[Int(w >> 24)] += 1 }
        let expected = Double(length) / 256
        let chiSquare = counts.reduce(0.0) { $0 + (Double($1) - expected) * (Double($1) - expected) / expected }
        // 255 degrees of freedom: the 0.9999 quantile is about 345.
        #expect(chiSquare < 345, "chi-square \(chiSquare)")
    }

    @Test func outOfPlaceMessagesAreRefusedAndEdgesNeverRevealBothSecrets() throws {
        let ids = (0..<5).map { "e\($0)" }
        let configuration = SecAggConfiguration.make(round: 9, participants: ids, vectorLength: 4, complete: true)
        var server = try SecAggServer(configuration: configuration)
        var clients = try ids.map { try SecAggClient(id: $0, configuration: configuration) }
        var ads = [KeyAdvertisement]()
        for i in clients.indices { ads.append(try clients[i].advertise()) }
        var wrongRound = ads[0]
        wrongRound.round = 8
        #expect(throws: SecAggError.self) { try server.receive(wrongRound) }
        for ad in ads { try server.receive(ad) }
        #expect(throws: SecAggError.self) { try server.receive(ads[0]) }
        let rosters = try server.closeAdvertising()
        #expect(throws: SecAggError.self) { try server.receive(ads[1]) }
        var sent = [String: [EncryptedShare]]()
        for i in clients.indices { sent[ids[i]] = try clients[i].shareKeys(roster: rosters[ids[i]]!) }
        // A share sent in another's name, or for another round, is refused; the edge's real shares still go in.
        var forged = sent["e0"]!
        forged[0].from = "e1"
        #expect(throws: SecAggError.self) { try server.receive(shares: forged, from: "e0") }
        for (id, shares) in sent { try server.receive(shares: shares, from: id) }
        var inbox = try server.closeSharing()
        // The client refuses a tampered box, a share for another round, and a share from a non-member.
        var tampered = inbox["e1"]!
        tampered[0].box[30] ^= 1
        var probe = clients[1]
        #expect(throws: SecAggError.self) { try probe.maskedInput([0, 0, 0, 0], shares: tampered) }
        var otherRound = inbox["e1"]!
        otherRound[0].round = 10
        #expect(throws: SecAggError.self) { try probe.maskedInput([0, 0, 0, 0], shares: otherRound) }
        var stranger = inbox["e1"]!
        stranger[0].from = "mallory"
        #expect(throws: SecAggError.self) { try probe.maskedInput([0, 0, 0, 0], shares: stranger) }
        inbox["e4"] = nil  // e4 drops before masking
        for i in 0..<4 { try server.receive(try clients[i].maskedInput([1, 2, 3, UInt32(i)], shares: inbox[ids[i]]!)) }
        let requests = try server.closeMasking()
        #expect(requests["e0"]!.dropped == ["e4"])
        // A server asking for both secrets of one edge (survivor and dropped at once) is refused, and so is
        // one asking a second time after an honest answer.
        var greedy = requests["e0"]!
        greedy.dropped.append("e1")
        #expect(throws: SecAggError(.refused, "an edge is named both as survivor and as dropped: answering would reveal its input")) {
            try clients[0].unmask(greedy)
        }
        let honest = try clients[0].unmask(requests["e0"]!)
        #expect(honest.keyShares.keys.sorted() == ["e4"] && honest.seedShares.keys.sorted() == ["e0", "e1", "e2", "e3"])
        var late = requests["e0"]!
        late.survivors = ["e0", "e1", "e2"]
        late.dropped = ["e3", "e4"]
        #expect(throws: SecAggError.self) { try clients[0].unmask(late) }
        try server.receive(honest)
        for i in 1..<4 { try server.receive(try clients[i].unmask(requests[ids[i]]!)) }
        let (sum, included) = try server.finish()
        #expect(included == ["e0", "e1", "e2", "e3"] && sum == [4, 8, 12, 6])
    }

    @Test func theSparseGraphIsSymmetricWithKNeighbours() {
        let ids = (0..<50).map { "edge-\($0)" }
        let configuration = SecAggConfiguration.make(round: 1, participants: ids, vectorLength: 1, graphSeed: 5)
        #expect(configuration.neighbourCount == 12 && configuration.threshold == 9)
        for id in ids {
            let neighbours = configuration.neighbours(of: id)
            #expect(neighbours.count == 12 && !neighbours.contains(id))
            for v in neighbours { #expect(configuration.neighbours(of: v).contains(id)) }
        }
        let reseeded = SecAggConfiguration.make(round: 1, participants: ids, vectorLength: 1, graphSeed: 6)
        #expect(reseeded.neighbours(of: "edge-0") != configuration.neighbours(of: "edge-0"))
    }

    @Test func theServersWholeGraphAgreesWithEachEdgesOwnPart() throws {
        // An edge builds only its own and its neighbours' lists; the server builds all of them. The rosters
        // the server relays are its lists: each must be the edge itself plus the neighbours the edge computed.
        let ids = (0..<60).map { "edge-\($0)" }
        let configuration = SecAggConfiguration.make(round: 3, participants: ids, vectorLength: 1, graphSeed: 11)
        var server = try SecAggServer(configuration: configuration)
        for id in ids {
            var client = try SecAggClient(id: id, configuration: configuration)
            try server.receive(client.advertise())
        }
        let rosters = try server.closeAdvertising()
        for id in ids {
            #expect(rosters[id]!.map(\.id).sorted() == ([id] + configuration.neighbours(of: id)).sorted())
        }
    }
}

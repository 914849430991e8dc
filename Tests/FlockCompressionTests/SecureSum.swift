import FlockSecAgg

/// Runs the real secure-aggregation protocol (X25519, sealed Shamir shares, ChaCha20 masks) over the
/// `encoded` vectors of edges `edge-0 …`, with edge `dropping` (if any) leaving before its masked input.
/// - Returns: the unmasked sum and the ids in it.
func secureSum(_ encoded: [[UInt32]], round: UInt64, graphSeed: UInt64, dropping: Int?) throws -> (sum: [UInt32], included: [String]) {
    let ids = encoded.indices.map { "edge-\($0)" }
    let configuration = SecAggConfiguration.make(round: round, participants: ids, vectorLength: encoded[0].count, graphSeed: graphSeed)
    var server = try SecAggServer(configuration: configuration)
    var clients = try ids.map { try SecAggClient(id: $0, configuration: configuration) }
    for i in clients.indices { try server.receive(clients[i].advertise()) }
    let rosters = try server.closeAdvertising()
    for i in clients.indices { try server.receive(shares: clients[i].shareKeys(roster: rosters[ids[i]]!), from: ids[i]) }
    let inbox = try server.closeSharing()
    for i in clients.indices where i != dropping { try server.receive(clients[i].maskedInput(encoded[i], shares: inbox[ids[i]]!)) }
    let requests = try server.closeMasking()
    for i in clients.indices where i != dropping { try server.receive(clients[i].unmask(requests[ids[i]]!)) }
    return try server.finish()
}

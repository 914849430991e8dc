import FlockServer
import FlockWire
import GRPCCore
import Testing

/// The identity check covers the whole edge service: every method's request says which edge ids it speaks for,
/// so a new method cannot slip past the check (its requests would be refused until it says).
@Suite struct DeviceIdentityCheckTests {
    typealias M = Flock_V1_EdgeService.Method

    /// Every method of the edge service with its request type; `Enrol` is the one call made without a certificate.
    static let requests: [(MethodDescriptor, Any.Type)] = [
        (M.Register.descriptor, M.Register.Input.self), (M.Heartbeat.descriptor, M.Heartbeat.Input.self),
        (M.FetchModel.descriptor, M.FetchModel.Input.self), (M.SubmitUpdate.descriptor, M.SubmitUpdate.Input.self),
        (M.ReportEvaluation.descriptor, M.ReportEvaluation.Input.self), (M.AdvertiseKeys.descriptor, M.AdvertiseKeys.Input.self),
        (M.ShareKeys.descriptor, M.ShareKeys.Input.self), (M.AwaitSecAgg.descriptor, M.AwaitSecAgg.Input.self),
        (M.RevealShares.descriptor, M.RevealShares.Input.self), (M.ReportEvidence.descriptor, M.ReportEvidence.Input.self),
        (M.RenewCertificate.descriptor, M.RenewCertificate.Input.self), (M.Leave.descriptor, M.Leave.Input.self),
        (M.Enrol.descriptor, M.Enrol.Input.self),
    ]

    @Test func everyEdgeMethodsRequestSaysWhichEdgeItSpeaksFor() {
        #expect(Set(Self.requests.map(\.0)) == Set(M.descriptors), "a method of the edge service is missing here: list it")
        for (method, type) in Self.requests where method != M.Enrol.descriptor {
            #expect(type is any EdgeClaim.Type, "\(method.method)'s request does not say which edge ids it claims (EdgeClaim)")
        }
    }

    @Test func aMessageClaimsEveryIdItCarries() {
        var shares = Flock_V1_SecAggShares()
        shares.edgeID = "a"
        shares.shares = [Flock_V1_SealedShare.with { $0.from = "b" }]
        #expect(shares.claimedEdgeIds == ["a", "b"])
        #expect(Flock_V1_UpdateChunk.with { $0.data = .init([1]) }.claimedEdgeIds.isEmpty)
        #expect(Flock_V1_UpdateChunk.with { $0.header = .with { $0.edgeID = "c" } }.claimedEdgeIds == ["c"])
    }
}

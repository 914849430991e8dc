import FlockCore
import FlockServer
import FlockTestSupport
import Testing

/// Fuzz target for the server's config files: ``Mutator/iterations`` seeded mutations of the commented example
/// `server/flock-server.toml`, each read as `serve --config` reads it (``ConfigFile``, then
/// ``ServerConfiguration/init(file:)``, then ``ServerConfiguration/validate()``). Every one is either a
/// configuration or a ``CoreError``; nothing crashes (an integer that does not fit, a negative count, NaN).
/// `FLOCK_FUZZ_ITERATIONS=N` runs longer by hand.
@Suite struct ServerConfigurationFuzzTests {
    @Test func mutatedConfigFilesAreReadOrRefusedWithATypedError() throws {
        let valid = TestData.bytes(TestData.root + "/server/flock-server.toml")
        try #require(!valid.isEmpty, "server/flock-server.toml is missing")
        var mutator = Mutator(seed: 0x5EED_0004)
        var accepted = 0
        for iteration in 0..<Mutator.iterations {
            let text = String(decoding: mutator.mutate(valid), as: UTF8.self)
            do {
                let configuration = try ServerConfiguration(file: try ConfigFile(text: text, source: "fuzz.toml"))
                try configuration.validate()
                _ = configuration.plan
                _ = configuration.scaling
                accepted += 1
            } catch {
                #expect(!error.message.isEmpty, "iteration \(iteration)")
            }
        }
        #expect(accepted > 0 && accepted < Mutator.iterations, "\(accepted) of \(Mutator.iterations) accepted")
    }
}

import FlockTestSupport
import Foundation
import Testing

/// The command lines of `flock-server admin tokens` and `admin audit`: each subcommand has help, a bad role or
/// limit is a usage error (64) before any call.
struct AdminTokensCommandLineTests {
    static let binary = TestData.executable("flock-server")

    @Test(arguments: [
        (["admin", "tokens", "--help"], "Create, list or revoke admin tokens"),
        (["admin", "tokens", "create", "--help"], "--role <viewer|operator>"),
        (["admin", "tokens", "list", "--help"], "never the tokens"),
        (["admin", "tokens", "revoke", "--help"], "its next call is refused"),
        (["admin", "audit", "--help"], "--limit <N>"),
        (["admin", "--help"], "tokens"),
    ])
    func everySubcommandHasHelp(arguments: [String], expected: String) throws {
        let result = try TestData.run(Self.binary, arguments, environment: ["COLUMNS": "200"], seconds: 60)
        #expect(result.status == 0 && result.output.contains(expected), "\(arguments): \(result.output)")
    }

    @Test func badValuesAreUsageErrors() throws {
        let role = try TestData.run(Self.binary, ["admin", "tokens", "create", "--role", "admin"], seconds: 60)
        #expect(role.status == 64 && role.error.contains("Please provide one of 'viewer' and 'operator'"), "\(role.error)")
        let missing = try TestData.run(Self.binary, ["admin", "tokens", "create"], seconds: 60)
        #expect(missing.status == 64 && missing.error.contains("--role"), "\(missing.error)")
        let label = try TestData.run(Self.binary, ["admin", "tokens", "create", "--role", "viewer", "--label", String(repeating: "x", count: 129)], seconds: 60)
        #expect(label.status == 64 && label.error.contains("--label: at most 128 bytes"), "\(label.error)")
        let limit = try TestData.run(Self.binary, ["admin", "audit", "--limit", "-3"], seconds: 60)
        #expect(limit.status == 64 && limit.error.contains("--limit"), "\(limit.error)")
    }
}

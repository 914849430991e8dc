import ArgumentParser
import FlockCore
import FlockServer
import FlockWire
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2

/// `flock-server admin`: talks to a running server over the admin service.
struct Admin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask a running server for its state, or start, pause, resume or stop training.",
        discussion: """
            The server is found at --server, else at the address the server wrote to DATA_DIR/serve.address, \
            else 127.0.0.1:7070. The admin token comes from --token-file, else FLOCK_ADMIN_TOKEN, else \
            DATA_DIR/admin.token (written by the server on first start, mode 0600). --token TOKEN works too, but \
            every user of the machine can read a command line (ps): prefer the file or the environment. \
            A viewer token may read (status, clients, rounds, round, audit); an operator token may also act \
            (start, pause, resume, stop, promote, rollback, pin, unpin, tokens, enrol, devices revoke): see \
            `admin tokens --help`. Operator actions are recorded in DATA_DIR/audit.log (`admin audit`).
            """,
        subcommands: [
            Status.self, Clients.self, Rounds.self, RoundCommand.self, Start.self, Pause.self, Resume.self, Stop.self,
            Promote.self, Rollback.self, Pin.self, Unpin.self, Tokens.self, Audit.self, Enrol.self, Devices.self,
        ])

    /// Options every admin subcommand takes.
    struct Connection: ParsableArguments {
        @Option(help: ArgumentHelp("The server's admin address.", valueName: "HOST:PORT"))
        var server: String?

        @Option(name: .customLong("data-dir"), help: ArgumentHelp("The server's data directory (token, address).", valueName: "DIR"))
        var dataDir: String = "./flock-data"

        @Option(
            name: .customLong("token-file"),
            help: ArgumentHelp("File holding the admin token (default: FLOCK_ADMIN_TOKEN, then DATA_DIR/admin.token).", valueName: "FILE"))
        var tokenFile: String?

        @Option(help: ArgumentHelp("Admin token; visible to every user in the process list: prefer --token-file or FLOCK_ADMIN_TOKEN.", valueName: "TOKEN"))
        var token: String?

        @Flag(help: "Print JSON instead of a table.")
        var json = false

        @OptionGroup(title: "Transport security")
        var transportSecurity: ClientTLSOptions

        func validate() throws {
            // A malformed address is a usage error (exit 64), like any bad option value.
            if let server {
                do { _ = try ServerAddress(parsing: server) } catch { throw ValidationError("--server: \(error.message)") }
            }
        }

        /// Runs one admin call, turning failures into a one-line error and exit code 1.
        func call<T: Sendable>(
            _ body: @escaping @Sendable (Flock_V1_AdminService.Client<ServerClientTransport>, Metadata, CallOptions) async throws -> T
        ) async throws -> T {
            let address: ServerAddress
            let secret: String
            let tls: ClientTLS?
            do {
                address = try AdminClient.serverAddress(explicit: server, dataDirectory: dataDir)
                secret = try AdminClient.token(explicit: token, file: tokenFile, dataDirectory: dataDir)
            } catch {
                fail(error.message)
            }
            // TLS without a CA or pin (none given, none in the data directory) is a usage error.
            do { tls = try transportSecurity.resolve(server: address, dataDirectory: dataDir) } catch { fail(error.message, code: 64) }
            do {
                return try await AdminClient.with(server: address, token: secret, tls: tls, body)
            } catch let error as RPCError {
                let hint = error.code == .unavailable ? " (is `flock-server serve` running at \(address)?)" : ""
                fail(error.message + hint)
            }
        }

        /// Prints a failed call, as `{"code": 1, "error": …}` under `--json`, and exits with code 1.
        func fail(_ message: String, code: Int32 = 1) -> Never {
            StandardError.line(json ? failureJSON(message, code: code) : "error: \(message)")
            Foundation.exit(code)
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the server's state: training state, rounds, edges, accuracy.")
        @OptionGroup var connection: Connection
        func run() async throws {
            let status = try await connection.call { client, metadata, options in
                try await client.status(Flock_V1_StatusRequest(), metadata: metadata, options: options)
            }
            print(connection.json ? AdminClient.json(status) : AdminClient.render(status))
        }
    }

    struct Clients: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the registered edges: state, last contact, rounds taken part in.")
        @OptionGroup var connection: Connection
        func run() async throws {
            let clients = try await connection.call { client, metadata, options in
                try await client.listClients(Flock_V1_ListClientsRequest(), metadata: metadata, options: options).clients
            }
            print(connection.json ? AdminClient.json(clients) : AdminClient.render(clients))
        }
    }

    struct Rounds: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List every round: state, participants, dropped, accuracy, time, bytes.",
            discussion: "--json prints an array with one object per round (round, state, participants, dropped, accuracy, seconds, upload_bytes, ...).")
        @OptionGroup var connection: Connection
        func run() async throws {
            let rounds = try await connection.call { client, metadata, options in
                try await client.listRounds(Flock_V1_ListRoundsRequest(), metadata: metadata, options: options).rounds
            }
            print(connection.json ? AdminClient.json(rounds) : AdminClient.render(rounds))
        }
    }

    struct RoundCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "round", abstract: "Show one round.", subcommands: [Show.self])

        struct Show: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show round N.")
            @Argument(help: "The round id.") var round: UInt64
            @OptionGroup var connection: Connection
            func run() async throws {
                let number = round
                let summary = try await connection.call { client, metadata, options in
                    var request = Flock_V1_ShowRoundRequest()
                    request.round = number
                    return try await client.showRound(request, metadata: metadata, options: options)
                }
                print(connection.json ? AdminClient.json(summary) : AdminClient.render([summary]))
            }
        }
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start training (a server started with --wait-for-start, or paused).")
        @OptionGroup var connection: Connection
        func run() async throws { try await control(.start, connection) }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Open no new rounds; the open round finishes.")
        @OptionGroup var connection: Connection
        func run() async throws { try await control(.pause, connection) }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume opening rounds after pause.")
        @OptionGroup var connection: Connection
        func run() async throws { try await control(.resume, connection) }
    }

    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Abandon the open round and shut the server down (completed rounds are on disk; serve resumes from them).")
        @OptionGroup var connection: Connection
        func run() async throws { try await control(.stop, connection) }
    }

    struct Promote: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move production to a version now (an accepted one; --force for any, and past a pin).",
            discussion: "Production is then watched against the version it replaced, and rolled back automatically if it does worse on the edges.")
        @Argument(help: ArgumentHelp("The version: a number, an alias or a hash prefix, as registry commands take it.", valueName: "VERSION"))
        var version: String
        @Option(help: "Why (required; recorded in the audit log).") var reason: String
        @Flag(help: "Promote a version the gate did not accept, or past a pinned production.") var force = false
        @OptionGroup var connection: Connection
        func run() async throws {
            try await changeProduction(.promote, version: version, reason: reason, force: force, connection)
        }
    }

    struct Rollback: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move production back: to --to VERSION, or to the previous production in the alias history.",
            discussion: "A pinned production is rolled back too: the pin is cleared, and the reply and the audit log say so.")
        @Option(help: ArgumentHelp("The version to roll back to: a number, an alias or a hash prefix (default: the previous production).", valueName: "VERSION"))
        var to: String?
        @Option(help: "Why (required; recorded in the audit log).") var reason: String
        @OptionGroup var connection: Connection
        func run() async throws {
            try await changeProduction(.rollback, version: to ?? "", reason: reason, force: false, connection)
        }
    }

    struct Pin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pin production to a version (an accepted one; --force for any): no automatic promotion or rollback until unpin.")
        @Argument(help: ArgumentHelp("The version: a number, an alias or a hash prefix, as registry commands take it.", valueName: "VERSION"))
        var version: String
        @Option(help: "Why (required; recorded in the audit log).") var reason: String
        @Flag(help: "Pin a version the gate did not accept (rejected or still a candidate).") var force = false
        @OptionGroup var connection: Connection
        func run() async throws {
            try await changeProduction(.pin, version: version, reason: reason, force: force, connection)
        }
    }

    struct Unpin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let the policy move production again.")
        @Option(help: "Why (required; recorded in the audit log).") var reason: String
        @OptionGroup var connection: Connection
        func run() async throws {
            try await changeProduction(.unpin, version: "", reason: reason, force: false, connection)
        }
    }

    static func changeProduction(
        _ action: Flock_V1_ProductionAction, version: String, reason: String, force: Bool, _ connection: Connection
    ) async throws {
        let response = try await connection.call { client, metadata, options in
            var request = Flock_V1_ProductionChange()
            request.action = action
            request.reference = version
            request.reason = reason
            request.force = force
            return try await client.changeProduction(request, metadata: metadata, options: options)
        }
        if connection.json {
            struct ChangeJSON: Encodable {
                var message: String
                var production: UInt64?
            }
            print(JSONOutput.line(ChangeJSON(message: response.message, production: response.productionVersion == 0 ? nil : response.productionVersion)))
        } else {
            print(response.message)
        }
    }

    static func control(_ command: Flock_V1_ControlCommand, _ connection: Connection) async throws {
        let status = try await connection.call { client, metadata, options in
            var request = Flock_V1_ControlRequest()
            request.command = command
            return try await client.control(request, metadata: metadata, options: options)
        }
        print(connection.json ? AdminClient.json(status) : AdminClient.render(status))
    }
}

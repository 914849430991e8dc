import ArgumentParser
import FlockCore
import FlockServer
import FlockWire

extension AdminRole: ExpressibleByArgument {}

extension Admin {
    /// `flock-server admin tokens`: the admin tokens and their roles.
    struct Tokens: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create, list or revoke admin tokens; each has a role, viewer or operator (operator only).",
            discussion: """
                A viewer token reads: status, clients, rounds, round show, audit. An operator token also acts: start, \
                pause, resume, stop, promote, rollback, pin, unpin, tokens, device enrolment and revocation. The \
                server's first token, DATA_DIR/admin.token, is the operator token with id "admin". The server keeps \
                only each token's SHA-256 (DATA_DIR/\(AdminTokenStore.fileName)); a token is shown once, when it is \
                created. Creating and revoking tokens are recorded in the audit log.
                """,
            subcommands: [Create.self, List.self, Revoke.self])

        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Issue a new admin token and print it (only now: the server keeps its hash).",
                discussion: """
                    The token alone is printed on standard output (TOKEN=$(flock-server admin tokens create ...) keeps \
                    it), its id and role on standard error; with --json one object {"id", "role", "label", "created", \
                    "revoked", "token"}. Hand it over as a file (--token-file) or FLOCK_ADMIN_TOKEN, not on a command line.
                    """)
            @Option(help: ArgumentHelp("What the token may do.", valueName: "viewer|operator")) var role: AdminRole
            @Option(help: ArgumentHelp("Who or what it is for, shown in tokens list and the audit log (at most 128 bytes).", valueName: "LABEL"))
            var label: String = ""
            @OptionGroup var connection: Admin.Connection

            func validate() throws {
                guard label.utf8.count <= AdminTokenStore.maximumLabelBytes else {
                    throw ValidationError("--label: at most \(AdminTokenStore.maximumLabelBytes) bytes (got \(label.utf8.count))")
                }
            }

            func run() async throws {
                let (role, label) = (role, label)
                let created = try await connection.call { client, metadata, options in
                    var request = Flock_V1_CreateAdminTokenRequest()
                    request.role = role.wire
                    request.label = label
                    return try await client.createAdminToken(request, metadata: metadata, options: options)
                }
                if connection.json {
                    print(AdminClient.json(created))
                } else {
                    StandardError.line(
                        "created admin token \(created.info.id) (\(role.rawValue)\(label.isEmpty ? "" : ", \(label)")); it is not shown again")
                    print(created.token)
                }
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "List the admin tokens: id, role, label, created, revoked (never the tokens).",
                discussion: "--json prints an array of {\"id\", \"role\", \"label\", \"created\", \"revoked\"} (revoked is null while active).")
            @OptionGroup var connection: Admin.Connection
            func run() async throws {
                let tokens = try await connection.call { client, metadata, options in
                    try await client.listAdminTokens(Flock_V1_ListAdminTokensRequest(), metadata: metadata, options: options).tokens
                }
                print(connection.json ? AdminClient.json(tokens) : AdminClient.render(tokens))
            }
        }

        struct Revoke: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Revoke an admin token: its next call is refused.",
                discussion: "The last active operator token cannot be revoked (create another first).")
            @Argument(help: ArgumentHelp("The token's id, as tokens list shows it.", valueName: "ID")) var id: String
            @OptionGroup var connection: Admin.Connection
            func run() async throws {
                let id = id
                let revoked = try await connection.call { client, metadata, options in
                    var request = Flock_V1_RevokeAdminTokenRequest()
                    request.id = id
                    return try await client.revokeAdminToken(request, metadata: metadata, options: options)
                }
                print(connection.json ? AdminClient.json(revoked) : "revoked admin token \(revoked.id)\(revoked.label.isEmpty ? "" : " (\(revoked.label))")")
            }
        }
    }
}

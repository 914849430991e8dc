import ArgumentParser
import FlockCore
import FlockServer
import FlockWire

extension Admin {
    /// `flock-server admin audit`: the audit log.
    struct Audit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the audit log: every operator action, who did it, when, and how it ended (viewers may read it).",
            discussion: """
                The server appends one JSON object per line to DATA_DIR/\(AuditLog.fileName) (mode 0600, fsync before \
                the action's answer): time, who (kind token|device|server, id, label), action, arguments (never a \
                secret), outcome (ok, refused, failed) and detail. Operator actions, and attempts a viewer token was \
                refused, are recorded. --json prints an array of those objects, oldest first.
                """)
        @Option(help: ArgumentHelp("Show the newest N events (0: all).", valueName: "N")) var limit: Int = 100
        @OptionGroup var connection: Admin.Connection

        func validate() throws {
            guard (0...Int(UInt32.max)).contains(limit) else { throw ValidationError("--limit: 0 (all) or a positive count (got \(limit))") }
        }

        func run() async throws {
            let limit = UInt32(limit)
            let response = try await connection.call { client, metadata, options in
                var request = Flock_V1_ListAuditRequest()
                request.limit = limit
                return try await client.listAudit(request, metadata: metadata, options: options)
            }
            if !response.damagedLines.isEmpty {
                let lines = response.damagedLines.prefix(10).map(String.init).joined(separator: ", ")
                StandardError.line(
                    "warning: \(response.damagedLines.count) line(s) of \(AuditLog.fileName) are not audit events and were skipped (line \(lines)); "
                        + "a crash during an append cuts one short, anything else means the file was damaged or edited")
            }
            let events = response.events.map(AuditEvent.init)
            print(connection.json ? AdminClient.json(events) : AdminClient.render(events))
        }
    }
}

import ArgumentParser
import FlockCore
import FlockCrypto
import FlockEdge
import FlockLogging
import FlockWire
import Foundation
import Logging

/// `flock-edge run`: take part in federated training.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Join a flock-server and take part in federated training with this device's data.",
        discussion: """
            Registers under a stable id, waits to be selected, fetches the global model by hash (cached in \
            --state-dir), trains on the local data for the plan's epochs, batch size and learning rate \
            (FedProx when the plan asks), submits the update and its example count, and evaluates the global \
            model on the held-out share when asked. Keeps heartbeating while training, and reconnects with \
            backoff when the server is away. A round whose model this edge's data do not fit (features per row, \
            classes) is declined at once, with a line saying so. A server whose model-signing key is not the \
            pinned one is refused and retried like an absent one; the log says what to do. Raw data never leave \
            this process: only updates and metrics do.

            With --simulate-clients K, --data is a folder of CSV files (such as `flock-server data partition` \
            writes) and this one process runs K edges over the first K of them, for load tests.

            Each edge needs its own --state-dir: it holds the edge's generated id, and a second flock-edge run on \
            a folder in use stops at once (exit status 1), naming the folder.

            Example: flock-edge run --server 127.0.0.1:7070 --data data/clients/client-0.csv --state-dir edge-0
            """)

    @Option(help: ArgumentHelp("The server's address.", valueName: "HOST:PORT"))
    var server: String = "127.0.0.1:7070"

    @Option(help: ArgumentHelp("Local training data: header-less CSV, label first (a folder with --simulate-clients).", valueName: "LOCAL.csv"))
    var data: String

    @Option(
        name: [.customLong("holdout-fraction"), .customLong("holdout")], parsing: .unconditional,
        help: ArgumentHelp("Share of local rows held out for evaluation, fixed per edge id (0-0.5; --holdout is its older name).", valueName: "FRACTION"))
    var holdout: Double = 0.1

    @Option(
        name: .customLong("state-dir"),
        help: ArgumentHelp("This edge's own folder: the generated edge id, cached models, the pinned server key. One edge per folder.", valueName: "DIR"))
    var stateDir: String = "./flock-edge-state"

    @Option(help: ArgumentHelp("Stable edge id, 1-128 of A-Z a-z 0-9 . _ - (default: generated once, kept in --state-dir).", valueName: "NAME"))
    var id: String?

    @Option(parsing: .unconditional, help: "Threads for local training.")
    var threads: Int = 1

    @Option(name: .customLong("simulate-clients"), parsing: .unconditional, help: "Run this many edges in this process, one per CSV file in the --data folder.")
    var simulateClients: Int?

    @Option(
        name: .customLong("server-key"),
        help: ArgumentHelp(
            "The server's model-signing key (DATA_DIR/server-signing.pub on the server): 64 hex digits or a file holding them. "
                + "Without it the key the server announces on first contact is pinned in --state-dir; with it, it replaces the pinned key.",
            valueName: "HEX|FILE"))
    var serverKey: String?

    @OptionGroup(title: "Transport security")
    var transportSecurity: EdgeTLSOptions

    @Flag(help: "Log only warnings and errors: what needs the operator (a refused server, a round this edge cannot take part in).")
    var quiet = false

    @OptionGroup(title: "Logging")
    var logging: LogOptions

    @Option(
        name: .customLong("crash-at"),
        help: ArgumentHelp(
            "Failure drill: kill this process with SIGKILL in a phase of a secure round (share-keys or masked-input), e.g. share-keys@3.",
            valueName: "PHASE@ROUND"))
    var crashAt: String?

    func validate() throws {
        guard holdout >= 0, holdout <= 0.5 else { throw ValidationError("--holdout-fraction must be in [0, 0.5]") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        if let simulateClients, simulateClients < 1 || simulateClients > 10_000 {
            throw ValidationError("--simulate-clients must be 1-10000")
        }
        if let id, !WireLimits.isValidEdgeId(id) {
            throw ValidationError("--id: use 1-128 characters of A-Z, a-z, 0-9, '.', '_' and '-'")
        }
        do { _ = try ServerAddress(parsing: server) } catch { throw ValidationError(error.message) }
        if let crashAt {
            do { _ = try CrashPoint(parsing: crashAt) } catch { throw ValidationError(error.message) }
        }
        if serverKey != nil, (try? parsedServerKey()) == nil {
            throw ValidationError("--server-key: give 64 hex digits, or a file holding them (the server's DATA_DIR/server-signing.pub)")
        }
        // TLS without a CA or pin (and no enrolled identity), or plaintext beyond loopback, is a usage error.
        if let address = try? ServerAddress(parsing: server) {
            do {
                _ = try transportSecurity.clientTLS(server: address, enrolled: DeviceIdentity.isEnrolled(stateDirectory: stateDir))
            } catch { throw ValidationError(error.message) }
        }
    }

    /// `--server-key` as a key: the hex itself, or the contents of the file it names.
    private func parsedServerKey() throws -> Ed25519.PublicKey? {
        guard let serverKey else { return nil }
        let text = FileManager.default.fileExists(atPath: serverKey)
            ? String(decoding: try FileIO.read(serverKey), as: UTF8.self) : serverKey
        guard let bytes = Hex.decode(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { throw ValidationError("not hex") }
        return try Ed25519.PublicKey(bytes: bytes)
    }

    func run() async throws {
        // Under --quiet, warnings and errors (what asks the operator to act) still show.
        let logger = logging.bootstrap(label: "flock.edge", atLeast: quiet ? .warning : nil)
        do {
            // Held until the process ends: no second edge works in this folder meanwhile.
            let folder = try StateFolder(path: stateDir)
            defer { withExtendedLifetime(folder) {} }
            let address = try ServerAddress(parsing: server)
            // An enrolled device presents its certificate (renewed first when due); otherwise TLS as the options say.
            let (tls, identity) = try await DeviceIdentity.connectionSecurity(
                stateDirectory: stateDir, server: address, trust: try transportSecurity.clientTLS(server: address, enrolled: DeviceIdentity.isEnrolled(stateDirectory: stateDir))
            ) { logger.notice("\($0)") }
            let connection = EdgeConnection(transport: try address.clientTransport(tls: tls))
            if let identity, let id, id != identity.edgeId {
                throw CoreError(.invalidArgument, "--id \(id): this device enrolled as \(identity.edgeId), and its certificate speaks for that id only; drop --id")
            }
            if identity != nil, simulateClients != nil {
                throw CoreError(.invalidArgument, "--simulate-clients runs many edges under one connection, and an enrolled device's certificate speaks for one edge: use a state folder without an identity, against a server with --enrolment open")
            }
            let baseId = try identity?.edgeId ?? id ?? persistentId()
            let sources = try dataFiles()
            let slots = TrainingSlots(count: simulateClients == nil ? 1 : max(1, ProcessInfo.processInfo.activeProcessorCount / threads))
            var agents = [EdgeAgent]()
            for (index, path) in sources.enumerated() {
                let agentId = simulateClients == nil ? baseId : "\(baseId)-\(String(format: "%03d", index))"
                let options = EdgeAgent.Options(
                    id: agentId, stateDirectory: stateDir, holdout: holdout, threads: threads,
                    crash: try crashAt.map { text throws(CoreError) in try CrashPoint(parsing: text) }, serverKey: try parsedServerKey())
                agents.append(try EdgeAgent(options: options, data: try Dataset.loadCSV(path: path), connection: connection, slots: slots, logger: logger))
            }
            if agents.count == 1 {
                logger.info("connecting to \(server)", metadata: [LogPrivacy.edgeKey: .string(agents[0].options.id)])
            } else {
                logger.info("\(agents.count) edges: connecting to \(server)")
            }
            // Until SIGTERM or SIGINT: then every edge leaves the federation and the process exits 0. Any edge
            // refused for good ends the process (status 1).
            try await EdgeRuntime.run(agents: agents, connection: connection, logger: logger)
        } catch let error as CoreError {
            StandardError.line("error: \(error.message)")
            throw ExitCode(1)
        }
    }

    /// The data files: `--data` itself, or the first K CSV files of the `--data` folder.
    private func dataFiles() throws(CoreError) -> [String] {
        guard let k = simulateClients else { return [data] }
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: data) } catch {
            throw CoreError(.fileNotFound, "--data \(data): with --simulate-clients, --data must be a folder of CSV files")
        }
        let files = names.filter { $0.hasSuffix(".csv") }.sorted().map { data + "/" + $0 }
        guard files.count >= k else {
            throw CoreError(.invalidArgument, "--data \(data) holds \(files.count) CSV files; --simulate-clients \(k) needs \(k)")
        }
        return Array(files.prefix(k))
    }

    /// The id kept in the state folder, created on first use.
    private func persistentId() throws(CoreError) -> String {
        let path = stateDir + "/edge.id"
        if let bytes = try? FileIO.read(path) {
            let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if WireLimits.isValidEdgeId(text) { return text }
        }
        do { try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true) } catch {
            throw CoreError(.io, "\(stateDir): cannot create the state folder")
        }
        let fresh = "edge-" + SecureRandom.token(byteCount: 4)
        try FileIO.writeAtomically(Array((fresh + "\n").utf8), to: path)
        return fresh
    }
}

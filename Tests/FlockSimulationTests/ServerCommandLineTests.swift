import FlockCore
import FlockTestSupport
import Foundation
import Testing

/// Golden tests of `flock-server`'s serve, simulate, data and admin command lines, as the README documents
/// them: a bad option or value is a usage error (64) before anything runs, a bad file is one line naming it
/// (1), `--help` lists the choices, and the older spellings (`simulate --threshold`, `--holdout`) still work.
/// Also: what `simulate --data-dir` leaves on disk is the owner's alone, and it is refused on the data
/// directory of a running server.
@Suite struct ServerCommandLineTests {
    static let binary = TestData.executable("flock-server")
    static let train = TestData.path("digits-train.csv")
    static let test = TestData.path("digits-test.csv")

    /// Runs `flock-server ARGUMENTS` with help laid out for 80 columns, killing it if it has not finished after
    /// `seconds` (so a command that should have stopped fails the test instead of hanging it).
    static func run(_ arguments: [String], seconds: Double = 300) throws -> (status: Int32, output: String, error: String) {
        let result = try TestData.run(binary, arguments, environment: ["COLUMNS": "80"], seconds: seconds)
        if result.timedOut { Issue.record("flock-server \(arguments) was still running after \(seconds) s") }
        return (result.status, result.output, result.error)
    }

    /// (arguments, exit status, a line of standard error, exactly).
    static let golden: [(arguments: [String], status: Int32, message: String)] = [
        (["serve", "--strategy", "fedfoo"], 64,
         "Error: The value 'fedfoo' is invalid for '--strategy <NAME>': unknown strategy 'fedfoo': use fedavg | fedprox[:MU] | fedadam[:ETA] | fedyogi[:ETA] | fedadagrad[:ETA]"),
        (["serve", "--codec", "q3"], 64, "Error: The value 'q3' is invalid for '--codec <ID>': codec 'q3': quantizers take 1, 2, 4, 8 or 16 bits, not 3"),
        (["serve", "--download-codec", "q3"], 64,
         "Error: The value 'q3' is invalid for '--download-codec <ID>': codec 'q3': quantizers take 1, 2, 4, 8 or 16 bits, not 3"),
        (["serve", "--listen", "0.0.0.0:99999"], 64,
         "Error: The value '0.0.0.0:99999' is invalid for '--listen <HOST:PORT>': address '0.0.0.0:99999': the port must be a number from 0 to 65535"),
        (["serve", "--secure-aggregation", "maybe"], 64,
         "Error: The value 'maybe' is invalid for '--secure-aggregation <on|off>'. Please provide one of 'on' and 'off'."),
        (["serve", "--secure-graph", "ring"], 64,
         "Error: The value 'ring' is invalid for '--secure-graph <GRAPH>'. Please provide one of 'secagg+' and 'complete'."),
        (["serve", "--rounds", "-1"], 64, "Error: rounds must be 0 (no limit) or positive"),
        (["serve", "--heartbeat", "5", "--edge-timeout", "2"], 64, "Error: edge_timeout must be longer than heartbeat_seconds"),
        (["serve", "--config", "/nonexistent/flock.toml"], 1, "error: /nonexistent/flock.toml: no such file"),
        (["simulate", "--transport", "tcp"], 64, "Error: The value 'tcp' is invalid for '--transport <KIND>'. Please provide one of 'direct' and 'grpc'."),
        (["simulate", "--partition", "zipf"], 64,
         "Error: The value 'zipf' is invalid for '--partition <SCHEME>': unknown partition scheme 'zipf'; use iid, shards or dirichlet:ALPHA with ALPHA > 0 (e.g. dirichlet:0.5)"),
        (["simulate", "--strategy", "fedadam:-1"], 64,
         "Error: The value 'fedadam:-1' is invalid for '--strategy <NAME>': strategy 'fedadam:-1': the parameter must be a positive number (fedavg | fedprox[:MU] | fedadam[:ETA] | fedyogi[:ETA] | fedadagrad[:ETA])"),
        (["simulate", "--holdout-fraction", "0.9"], 64, "Error: --holdout-fraction must be in [0, 0.5]"),
        (["simulate", "--holdout", "0.9"], 64, "Error: --holdout-fraction must be in [0, 0.5]"),
        (["simulate", "--holdout", "data/test.csv"], 64,
         "Error: The value 'data/test.csv' is invalid for '--holdout': simulate's --holdout is a share of each edge's rows (--holdout-fraction F); the evaluation file is --eval FILE.csv"),
        (["serve", "--max-message-bytes", "-5"], 64,
         "Error: max_message_bytes must be at least 1 MiB + 4 KiB (one chunk and its header) and at most 1 GiB"),
        (["simulate", "--threshold", "0"], 64, "Error: --secure-threshold must be at least 1"),
        (["simulate", "--threshold", "3", "--secure-threshold", "3"], 64, "Error: --threshold is the older spelling of --secure-threshold: give one"),
        (["simulate", "--epochs", "-1"], 64, "Error: --epochs and --batch must be at least 1"),
        (["simulate", "--train", "/nonexistent/train.csv", "--rounds", "1"], 1, "error: /nonexistent/train.csv: no such file"),
        (["data", "partition", "--data", train, "--clients", "2", "--scheme", "zipf", "--out", "/nonexistent/parts"], 64,
         "Error: The value 'zipf' is invalid for '--scheme <SCHEME>': unknown partition scheme 'zipf'; use iid, shards or dirichlet:ALPHA with ALPHA > 0 (e.g. dirichlet:0.5)"),
        (["data", "partition", "--data", "/nonexistent/train.csv", "--clients", "2", "--scheme", "iid", "--out", "/nonexistent/parts"], 1,
         "error: /nonexistent/train.csv: no such file"),
        (["admin", "status", "--token-file", "/nonexistent/token"], 1, "error: /nonexistent/token: no such file"),
        // Under --json a failure is one JSON object on standard error, as the registry and flock-edge print them.
        (["admin", "status", "--token-file", "/nonexistent/token", "--json"], 1, #"{"code":1,"error":"/nonexistent/token: no such file"}"#),
        (["simulate", "--train", "/nonexistent/train.csv", "--rounds", "1", "--json"], 1, #"{"code":1,"error":"/nonexistent/train.csv: no such file"}"#),
        (["admin", "status", "--server", "1.2.3.4:99999"], 64,
         "Error: --server: address '1.2.3.4:99999': the port must be a number from 0 to 65535"),
        (["serve", "--tls", "off", "--listen", "0.0.0.0:7070"], 64,
         "Error: --tls off on 0.0.0.0:7070 would let anyone on the network read and alter every update and token; keep TLS on (the default), or add --insecure if this network is yours alone"),
        (["serve", "--tls-cert", "/nonexistent/server.pem"], 64,
         "Error: --tls-cert and --tls-key go together: give both (the certificate and its key), or neither for the data directory's"),
        (["admin", "status", "--data-dir", "/nonexistent", "--token", "t"], 64,
         "error: the connection to 127.0.0.1:7070 uses TLS: give the server's CA with --ca FILE (the server's DATA_DIR/tls/ca.pem) or pin its certificate with --server-fingerprint SHA256 (printed by flock-server init and serve); --tls off talks plaintext to a server on loopback"),
        (["data", "balance"], 64, "Error: give the data file: --data FILE.csv"),
        (["data", "balance", "--data", "/nonexistent/a.csv"], 1, "error: /nonexistent/a.csv: no such file"),
        (["data", "balance", "/nonexistent/b.csv"], 1, "error: /nonexistent/b.csv: no such file"),
    ]

    @Test(arguments: golden.indices)
    func mainErrorMessages(index: Int) throws {
        let (arguments, status, message) = Self.golden[index]
        let result = try Self.run(arguments)
        #expect(result.status == status, "\(arguments): \(result.error)")
        let lines = result.error.split(separator: "\n").map(String.init)
        // A usage error starts with its message; a bad file ends with it (simulate announces its run first).
        #expect((status == 64 ? lines.first : lines.last) == message, "\(arguments): \(result.error)")
        #expect(result.output.isEmpty, "\(arguments)")
    }

    @Test func serveHelpIsPinned() throws {
        let result = try Self.run(["serve", "--help"])
        #expect(result.status == 0)
        #expect(result.output == Self.serveHelp + "\n\n", "flock-server serve --help is now:\n\(result.output)")
    }

    @Test func simulateHelpIsPinned() throws {
        let result = try Self.run(["simulate", "--help"])
        #expect(result.status == 0)
        #expect(result.output == Self.simulateHelp + "\n\n", "flock-server simulate --help is now:\n\(result.output)")
    }

    @Test func aSimulationWithADataDirectoryLeavesOnlyFilesOfItsOwner() throws {
        let folder = TestData.temporaryFolder()
        let data = folder + "/server", state = folder + "/state"
        // The older spellings --threshold and --holdout are still accepted.
        let result = try Self.run([
            "simulate", "--train", Self.train, "--eval", Self.test, "--clients", "4", "--rounds", "2", "--model", "mlp:16",
            "--threads", "1", "--data-dir", data, "--state-dir", state, "--holdout", "0.2", "--threshold", "2", "--min-pairs", "10", "--json",
        ])
        #expect(result.status == 0, "\(result.error)")
        for directory in [data, state] {
            let all = (FileManager.default.enumerator(atPath: directory)?.allObjects as? [String]) ?? []
            #expect(!all.isEmpty, "\(directory) is empty")
            var exposed = [String]()
            for path in ["."] + all {
                var info = stat()
                guard lstat(directory + "/" + path, &info) == 0 else { continue }
                if info.st_mode & 0o077 != 0 { exposed.append("\(path) \(String(info.st_mode & 0o7777, radix: 8))") }
            }
            #expect(exposed.isEmpty, "\(directory): readable by others: \(exposed)")
        }
    }

    @Test func aSimulationOnTheDataDirectoryOfARunningServerIsRefused() throws {
        let folder = TestData.temporaryFolder()
        let data = folder + "/server"
        let server = Process()
        server.executableURL = URL(fileURLWithPath: Self.binary)
        server.arguments = ["serve", "--data-dir", data, "--listen", "127.0.0.1:0", "--wait-for-start"]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer {
            kill(server.processIdentifier, SIGKILL)
            server.waitUntilExit()
        }
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: data + "/serve.address"), server.isRunning, Date() < deadline {
            Thread.sleep(forTimeInterval: 0.02)
        }
        try #require(FileManager.default.fileExists(atPath: data + "/serve.address"), "serve did not start")
        let result = try Self.run([
            "simulate", "--train", Self.train, "--eval", Self.test, "--clients", "2", "--rounds", "1", "--model", "logreg", "--data-dir", data,
        ])
        #expect(result.status == 1)
        #expect(
            result.error.split(separator: "\n").last.map(String.init)
                == "error: \(data) is in use by another process (pid \(server.processIdentifier)): wait for it to finish or stop it, or give another folder",
            "\(result.error)")
        #expect(server.isRunning)
    }

    static let serveHelp = #"""
        OVERVIEW: Run the aggregation server: edges connect over gRPC, rounds of
        federated training run until stopped.

        Works with no config file: the 2nn model on 784 features and 10 classes (pixels
        scaled by 1/255), FedAvg, rounds start as soon as --min-clients edges are
        connected and keep going until paused, stopped or --rounds is reached. Values
        come from the embedded defaults, then --config, then the flags below. After
        every round the global model, the strategy state and the round history are
        written atomically to --data-dir; after a crash (kill -9 included) serve
        resumes from the last completed round and edges reconnect by themselves.

        On first start an admin token is written to DATA_DIR/admin.token (mode 0600);
        the server keeps only its hash. `flock-server admin --data-dir DIR ...` finds
        both the token and the bound address there.

        Example: flock-server serve --listen 127.0.0.1:7070 --data-dir ./flock-data
        --rounds 20 --min-clients 10 --holdout data/mnist5k-test.csv

        USAGE: flock-server serve <options>

        LOGGING:
          --log-level <LEVEL>     The least severe events logged; edge ids appear only
                                  at debug and trace. (values: trace, debug, info,
                                  notice, warning, error, critical; default: info)
          --log-format <FORMAT>   text: one line per event; json: one JSON object per
                                  line (time, level, label, message, metadata).
                                  (values: text, json; default: text)

        TRANSPORT SECURITY:
          --tls <on|off>          TLS for edges and admin: on serves the certificate in
                                  DATA_DIR/tls (created on first start, with its CA
                                  DATA_DIR/tls/ca.pem for edges' --ca) or --tls-cert;
                                  off is plaintext, allowed beyond loopback only with
                                  --insecure. [default: on] (values: on, off)
          --insecure              Allow --tls off on an address other than loopback
                                  (everything crosses the network in the clear).
          --tls-cert <FILE>       Your own server certificate (PEM, with any
                                  intermediates) instead of DATA_DIR/tls/server.pem;
                                  read again when it changes on disk. Needs --tls-key.
          --tls-key <FILE>        The private key of --tls-cert (PEM).
          --tls-client-ca <FILE>  CA certificates (PEM) that edges' client certificates
                                  must chain to, when they present one. [default:
                                  DATA_DIR/tls/ca.pem]

        OPTIONS:
          --config <FILE>         TOML config (commented example:
                                  server/flock-server.toml).
          --listen <HOST:PORT>    Address for edges and admin (port 0: any free port).
                                  [default: 127.0.0.1:7070]
          --metrics <HOST:PORT>   Serve Prometheus metrics at http://HOST:PORT/metrics,
                                  and nothing else there (port 0: any free port,
                                  written to DATA_DIR/metrics.address). [default: off]
          --enrolment <certificate|open>
                                  certificate: only enrolled devices take part, each
                                  call bound to its device certificate over mutual TLS
                                  (admin enrol create, flock-edge enrol); open: anyone
                                  who reaches the server registers under any id
                                  (loopback and tests only). [default: certificate]
                                  (values: certificate, open)
          --device-certificate-lifetime <DURATION>
                                  How long a device certificate is valid; edges renew
                                  it after two thirds (a number and s, m, h or d).
                                  [default: 30d]
          --data-dir <DIR>        Checkpoint, global model, admin token. [default:
                                  ./flock-data]
          --model <MODEL>         Model: 2nn | cnn | mlp:H1,H2,... | logreg. [default:
                                  2nn]
          --rounds <rounds>       Rounds to complete; 0 for no limit. [default: 0]
          --clients-per-round <clients-per-round>
                                  Updates a round aggregates (K); 0 uses --fraction.
                                  [default: 0]
          --fraction <fraction>   Share of connected edges a round aims for, when
                                  --clients-per-round is 0. [default: 1.0]
          --min-clients <min-clients>
                                  Edges needed to start a round, and updates needed at
                                  the deadline. [default: 2]
          --strategy <NAME>       Server strategy: fedavg | fedprox[:MU] |
                                  fedadam[:ETA] | fedyogi[:ETA] | fedadagrad[:ETA].
                                  [default: fedavg]
          --holdout <FILE.csv>    Server holdout CSV: evaluate every new global model
                                  on it.
          --input-features <input-features>
                                  Features per row of the edges' data; inferred from
                                  --holdout when not given. [default: 784]
          --classes <classes>     Classes (labels 0 to N-1); inferred from --holdout
                                  when not given. [default: 10]
          --scale <input|standardize>
                                  input: every feature divided by --input-scale;
                                  standardize: per-feature mean and deviation fitted
                                  from the edges' rows in a first statistics round
                                  (under secure aggregation the server learns only
                                  their totals). [default: input] (values: input,
                                  standardize)
          --input-scale <input-scale>
                                  With --scale input: every feature is divided by this;
                                  0 for rows as they are. [default: 255]
          --epochs <epochs>       Local epochs per round. [default: 1]
          --batch <batch>         Local mini-batch size. [default: 10]
          --lr <lr>               Local learning rate. [default: 0.05]
          --seed <seed>           Seed of the initial weights and of selection.
                                  [default: 0]
          --heartbeat <heartbeat> Seconds between edge heartbeats. [default: 5]
          --edge-timeout <edge-timeout>
                                  Seconds without contact after which an edge is gone.
                                  [default: 30]
          --round-timeout <round-timeout>
                                  Seconds a round waits for updates. [default: 600]
          --max-message-bytes <max-message-bytes>
                                  Largest gRPC message accepted; a larger one is
                                  refused with resource exhausted and a message naming
                                  this limit. [default: 4194304]
          --wait-for-start        Run no rounds until `flock-server admin start`.
          --secure-aggregation <on|off>
                                  The server learns only the sum of the updates (off
                                  prints a warning). [default: on] (values: on, off)
          --secure-graph <GRAPH>  secagg+: k = 2 log2(n) neighbours; complete:
                                  everyone. [default: secagg+] (values: secagg+,
                                  complete)
          --secure-threshold <secure-threshold>
                                  Shares that reconstruct a secret; 0 for two thirds of
                                  a neighbourhood. [default: 0]
          --codec <ID>            Update codec: f32 (no compression; the default
                                  without secure aggregation), fixed32 (the default
                                  with it), q1|q2|q4|q8|q16 (stochastic quantization, a
                                  range per block of 1,024 values), rot+q{b} (after a
                                  randomized Hadamard rotation),
                                  sketch:RxC[,q{b}][,k=K] (a count sketch, FetchSGD),
                                  or topk:F[,momentum=M][,warmup=W][,values=sign]
                                  (without secure aggregation); +deflate adds the
                                  lossless stage (without secure aggregation).
          --download-codec <ID>   How the global model travels to the edges: f32 (the
                                  model file), or q4|q8|q16|rot+q{b} (edges train from
                                  the decoded model), each optionally +deflate.
                                  [default: f32]
          --version               Show the version.
          -h, --help              Show help information.
        """#

    static let simulateHelp = #"""
        OVERVIEW: Run federated training of N edges in one process (no network) and
        report each round.

        The training data are partitioned over --clients edges. Every round the server
        selects a share of them, each trains locally from the global model, and the
        strategy folds their example-weighted updates into the next global model, which
        is evaluated on --eval. Prints a line per round (a JSON object per round and a
        final summary with --json).

        --transport direct (the default) calls the server's round logic and the edges'
        training directly, with no messages. --transport grpc runs the code of `serve`
        and `flock-edge run` themselves, one coordinator and one agent per edge,
        exchanging protobuf messages over gRPC's in-process transport instead of TCP.

        Secure aggregation is on by default (--transport direct): every round runs the
        protocol of Bonawitz et al. 2017 with the SecAgg+ neighbour graph of Bell et
        al. 2020 (--secure-graph complete for the 2017 one): each edge encodes its
        update in fixed point into Z_2^32, masks it, and the server learns only the sum
        over the survivors. --drop-fraction F makes a random share F of each round's
        edges drop out, each at a random phase. With --json each round object carries
        "secure_aggregation": {graph, neighbours, threshold, dropped_per_phase,
        phase_seconds, abort_reason}.

        --data-dir DIR feeds the model registry in DIR (as `serve` does): every round's
        model becomes a version, goes through the acceptance gate, is shadowed beside
        production on a share of the edges, and is promoted or rolled back on their
        paired evidence (each edge keeps --holdout-fraction of its rows out of training
        for it). `flock-server registry … --data-dir DIR` then shows it all. --data-dir
        and --state-dir are locked while the run lasts (a server or another run on them
        is refused) and made mode 0700.

        --codec compresses the updates: q{b} and rot+q{b} under secure aggregation too
        (their encodings add up in Z_2^32), f32 and the quantizers without it.
        upload_bytes counts the encoded payloads.

        Example: flock-server simulate --train data/mnist5k-train.csv --eval
        data/mnist5k-test.csv --clients 20 --partition shards --fraction 0.5 --rounds
        20 --model 2nn --epochs 1 --batch 10 --lr 0.05

        USAGE: flock-server simulate <options>

        LOGGING (ON STANDARD ERROR):
          --log-level <LEVEL>     The least severe events logged; edge ids appear only
                                  at debug and trace. (values: trace, debug, info,
                                  notice, warning, error, critical; default: info)
          --log-format <FORMAT>   text: one line per event; json: one JSON object per
                                  line (time, level, label, message, metadata).
                                  (values: text, json; default: text)

        OPTIONS:
          --train, --data <TRAIN.csv>
                                  Training data, partitioned over the edges (--data, as
                                  in flock-edge, works too). (default:
                                  data/mnist5k-train.csv)
          --eval <TEST.csv>       Evaluation data, scored after every round. (default:
                                  data/mnist5k-test.csv)
          --clients <clients>     Number of edges. (default: 20)
          --partition <SCHEME>    How rows are dealt to edges: iid | shards |
                                  dirichlet:ALPHA. (default: iid)
          --fraction <fraction>   Share of edges selected per round. (default: 0.5)
          --clients-per-round <clients-per-round>
                                  Edges selected per round (overrides --fraction).
          --rounds <rounds>       Rounds to run. (default: 20)
          --model <MODEL>         Model: 2nn | cnn | mlp:H1,H2,... | logreg. (default:
                                  2nn)
          --epochs <epochs>       Local epochs per round. (default: 1)
          --batch <batch>         Local mini-batch size. (default: 10)
          --lr <lr>               Local learning rate. (default: 0.05)
          --strategy <NAME>       Server strategy: fedavg | fedprox[:MU] |
                                  fedadam[:ETA] | fedyogi[:ETA] | fedadagrad[:ETA].
                                  (default: fedavg)
          --seed <seed>           Seed of partition, selection, initialization and
                                  local shuffling. (default: 0)
          --threads <threads>     Edges trained at once (default: all cores).
          --state-dir <DIR>       Write a round checkpoint here after every round, and
                                  resume from it when the run is started again (after a
                                  crash or kill -9).
          --transport <KIND>      direct, or grpc: the serve and edge code over gRPC's
                                  in-process transport. (values: direct, grpc; default:
                                  direct)
          --secure-aggregation <on|off>
                                  The server sees only the sum of the updates (off
                                  prints a warning). (values: on, off; default: on)
          --secure-graph <GRAPH>  secagg+: masks with k = 2 log2(n) neighbours;
                                  complete: everyone with everyone. (values: secagg+,
                                  complete; default: secagg+)
          --secure-threshold <secure-threshold>
                                  Shares that reconstruct an edge's secrets (default:
                                  two thirds of a neighbourhood, rounded up).
          --drop-fraction <F>     Share of each round's selected edges that drop out of
                                  secure aggregation, each at a random phase. (default:
                                  0.0)
          --codec <ID>            Update codec: f32 (no compression; the default
                                  without secure aggregation), fixed32 (the default
                                  with it), q1|q2|q4|q8|q16 (stochastic quantization, a
                                  range per block of 1,024 values), rot+q{b} (after a
                                  randomized Hadamard rotation),
                                  sketch:RxC[,q{b}][,k=K] (a count sketch, FetchSGD),
                                  or topk:F[,momentum=M][,warmup=W][,values=sign]
                                  (without secure aggregation); +deflate adds the
                                  lossless stage (without secure aggregation).
          --download-codec <ID>   How the global model travels to the edges: f32 (the
                                  model file), or q4|q8|q16|rot+q{b} (edges train from
                                  the decoded model), each optionally +deflate.
                                  [default: f32]
          --initial-range <S>     Under secure aggregation, the first round's
                                  quantization range of every block of q{b}/rot+q{b};
                                  later rounds adapt it. (default: 0.01)
          --data-dir <DIR>        Feed the model registry in this server data
                                  directory: gate, shadow, promotion and rollback after
                                  every round.
          --holdout-fraction <holdout-fraction>
                                  With --data-dir: share of each edge's rows held out
                                  of training for the paired evidence (0-0.5).
                                  (default: 0.1)
          --shadow-share <shadow-share>
                                  With --data-dir: share of edges that run a shadow
                                  candidate beside production. (default: 0.5)
          --min-pairs <min-pairs> With --data-dir: labelled pairs before an analysis
                                  first decides. (default: 200)
          --min-edges <min-edges> With --data-dir: distinct edges before an analysis
                                  decides. (default: 3)
          --margin <margin>       With --data-dir: the non-inferiority margin on
                                  accuracy. (default: 0.02)
          --min-accuracy <min-accuracy>
                                  With --data-dir: the gate's minimum holdout accuracy.
          --scale <max|standardize>
                                  max: every feature divided by the largest value;
                                  standardize: per-feature mean and deviation from the
                                  edges' feature moments, as serve --scale standardize
                                  fits them. (values: max, standardize; default: max)
          --json                  Print one JSON object per round and a final summary.
          --version               Show the version.
          -h, --help              Show help information.
        """#
}

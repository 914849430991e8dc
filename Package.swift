// swift-tools-version:6.0
//
// Flock: federated and continual learning in Swift. See README.md and DESIGN.md.
// Dependencies point one way: executables -> FlockServer/FlockEdge -> FlockCore, FlockCrypto -> C libraries.

import PackageDescription

let package = Package(
    name: "Flock",
    products: [
        .executable(name: "flock-edge", targets: ["flock-edge"]),
        .executable(name: "flock-server", targets: ["flock-server"]),
        .library(name: "FlockCore", targets: ["FlockCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    ],
    targets: [
        // C libraries, each behind exactly one Swift wrapper module.
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        .systemLibrary(
            name: "CLibCrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .systemLibrary(
            name: "COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),

        // Worker threads for parallel loops (woken in microseconds, unlike libdispatch's idle pool).
        .target(name: "FlockParallel"),

        // The log handlers both executables bootstrap swift-log with: text (one line per event) or JSON lines.
        .target(name: "FlockLogging", dependencies: [.product(name: "Logging", package: "swift-log")]),

        // Safe Swift over libsodium (and OpenSSL's libcrypto for its faster ChaCha20 keystream).
        .target(name: "FlockCrypto", dependencies: ["CSodium", "CLibCrypto", "FlockParallel"]),

        // The shared training core: tensors, layers, models, optimizers, data, model files.
        .target(
            name: "FlockCore",
            dependencies: ["COpenBLAS", "FlockCrypto", "FlockParallel"],
            swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
        ),

        // The wire protocol: flock.proto and its generated Swift (committed; `make proto` regenerates it),
        // and the mapping between wire messages and FlockCore values.
        .target(
            name: "FlockWire",
            dependencies: [
                "FlockCore", "FlockCrypto", "FlockSecAgg",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            exclude: ["flock.proto"]
        ),

        // Edge runtime and server runtime.
        // Both talk gRPC over HTTP/2 (NIO); FlockCore stays free of it.
        .target(
            name: "FlockEdge",
            dependencies: [
                "FlockCore", "FlockCrypto", "FlockWire", "FlockSecAgg", "FlockCompression", "FlockLogging",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                // The device's key and certificate request (enrolment), and its certificate.
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ]
        ),
        .target(
            name: "FlockServer",
            dependencies: [
                "FlockCore", "FlockCrypto", "FlockWire", "FlockSecAgg", "FlockCompression", "FlockRegistry", "FlockLogging",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                // Metrics (swift-metrics, exposed by swift-prometheus on a Hummingbird endpoint): server only.
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
            ]
        ),
        // Federated training of many edges in one process, through the server's and the edges' code.
        .target(name: "FlockSecAgg", dependencies: ["FlockCrypto"]),
        // Update codecs: quantization into the ring Z_2^32 of secure aggregation.
        .target(name: "FlockCompression", dependencies: ["FlockCore", "CZlib"]),
        // The model registry: versions, artifacts, aliases, audit log and the promotion analyses, on SQLite.
        .target(
            name: "FlockRegistry",
            dependencies: ["FlockCore", "FlockCrypto", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .target(
            name: "FlockSimulation",
            dependencies: [
                "FlockServer", "FlockEdge", "FlockCore", "FlockCrypto", "FlockWire", "FlockSecAgg", "FlockCompression", "FlockLogging",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCInProcessTransport", package: "grpc-swift-2"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Thin executables.
        .executableTarget(
            name: "flock-edge",
            dependencies: [
                "FlockEdge", "FlockWire", "FlockCrypto", "FlockLogging", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "flock-server",
            dependencies: [
                "FlockServer", "FlockSimulation", "FlockWire", "FlockCrypto", "FlockCompression", "FlockRegistry", "FlockLogging",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            ]
        ),

        // Shared test helpers: data paths, temporary folders, running the built executables.
        .target(
            name: "FlockTestSupport", dependencies: ["FlockCore", .product(name: "Logging", package: "swift-log")], path: "Tests/FlockTestSupport"),
        .testTarget(name: "FlockParallelTests", dependencies: ["FlockParallel"]),
        .testTarget(name: "FlockCryptoTests", dependencies: ["FlockCrypto"]),
        .testTarget(name: "FlockCoreTests", dependencies: ["FlockCore", "FlockTestSupport"]),
        // The edge tests also run the built flock-edge binary as a process, against real flock-server processes
        // (listed so they are built first).
        .testTarget(name: "FlockEdgeTests", dependencies: ["FlockEdge", "FlockCore", "FlockCrypto", "FlockTestSupport", "flock-edge", "flock-server"]),
        .testTarget(name: "FlockServerTests", dependencies: ["FlockServer", "FlockCore", "FlockCrypto", "FlockCompression", "FlockRegistry", "FlockTestSupport", .product(name: "SwiftASN1", package: "swift-asn1"), .product(name: "X509", package: "swift-certificates"), .product(name: "Crypto", package: "swift-crypto"),
                                                     .product(name: "NIOEmbedded", package: "swift-nio"), .product(name: "NIOHTTP2", package: "swift-nio-http2")]),
        .testTarget(name: "FlockWireTests", dependencies: ["FlockWire", "FlockCore"]),
        // Real flock-server and flock-edge processes on 127.0.0.1, and raw gRPC calls against them.
        .testTarget(
            name: "FlockIntegrationTests",
            dependencies: [
                "FlockCore", "FlockCrypto", "FlockEdge", "FlockServer", "FlockWire", "FlockTestSupport", "flock-server", "flock-edge",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The simulation tests also run the built flock-server binary (kill -9 and resume).
        .testTarget(name: "FlockRegistryTests", dependencies: ["FlockRegistry", "FlockCore", "FlockCrypto", "FlockTestSupport"]),
        .testTarget(name: "FlockSecAggTests", dependencies: ["FlockSecAgg", "FlockCrypto"]),
        .testTarget(name: "FlockCompressionTests", dependencies: ["FlockCompression", "FlockCore", "FlockSecAgg"]),
        .testTarget(name: "FlockSimulationTests", dependencies: ["FlockSimulation", "FlockServer", "FlockEdge", "FlockCore", "FlockRegistry", "FlockTestSupport", "flock-server"]),
    ]
)

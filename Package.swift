// swift-tools-version: 6.1
import Foundation
import PackageDescription

// One package, one executable (`gatehouse`), modules as in ../shared/design/ARCHITECTURE.md.
// Pure modules (STUN, TURN, WireGuard, Policy, Identifiers, ControlProtocol) do no I/O; runtime modules (Actors,
// BPF, Persistence) touch the system; shells (Portal, Relay, Gateway, Client) never import each other.

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

// scripts/fuzz sets GATEHOUSE_FUZZ=1 (in its own build directory): the modules under fuzz are then built
// with libFuzzer's coverage instrumentation and `gatehouse-fuzz` is linked with libFuzzer. Only these
// targets get the flags (not the build tools, whose own `main` would clash with libFuzzer's).
let fuzzing = ProcessInfo.processInfo.environment["GATEHOUSE_FUZZ"] == "1"
let fuzzedSettings: [SwiftSetting] = swiftSettings + (fuzzing ? [.unsafeFlags(["-sanitize=fuzzer"]), .define("FUZZING")] : [])

let package = Package(
    name: "gatehouse",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "gatehouse", targets: ["gatehouse"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        // MARK: C libraries from the system
        .systemLibrary(
            name: "CBPF",
            pkgConfig: "libbpf",
            providers: [.apt(["libbpf-dev"])]
        ),
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        // System calls that need _GNU_SOURCE (recvmmsg, sendmmsg, setns), which Swift's Glibc lacks.
        .target(name: "CGatehouseSystem"),
        // The one definition of every layout shared with the kernel: the header under bpf/include is
        // included by the *.bpf.c programs and imported by Swift through this module.
        .target(
            name: "BPFMaps",
            path: "bpf",
            sources: ["layouts.c"],
            publicHeadersPath: "include"
        ),

        // MARK: Pure modules
        // IP and transport addresses as values (no I/O): shared by the codecs, the state machines and
        // the shells.
        .target(name: "Addresses", swiftSettings: fuzzedSettings),
        .target(
            name: "STUN",
            dependencies: ["Addresses", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: fuzzedSettings
        ),
        .target(
            name: "TURN",
            dependencies: ["STUN", "Addresses"],
            swiftSettings: fuzzedSettings
        ),
        // The TURN server with its sessions run inline, for tests and the fuzz target (the relay runs
        // each session in an actor instead).
        .target(
            name: "TURNTesting",
            dependencies: ["STUN", "TURN", "Addresses"],
            swiftSettings: fuzzedSettings
        ),
        .target(name: "WireGuard", dependencies: ["CSodium"], swiftSettings: fuzzedSettings),
        // DNS messages as far as a stub resolver needs them (the gateway's DNS resources).
        .target(name: "DNS", dependencies: ["Addresses"], swiftSettings: fuzzedSettings),
        // ICE (RFC 8445) for the client and the gateway: candidates, priorities, the checklist.
        .target(name: "ICE", dependencies: ["Addresses", "STUN"], swiftSettings: swiftSettings),
        .target(name: "Policy", dependencies: ["Addresses", "Identifiers"], swiftSettings: swiftSettings),
        // Typed IDs (`SiteID`, `GroupID`, ...) shared by the contracts and the storage.
        .target(name: "Identifiers", swiftSettings: swiftSettings),
        // The admin API's contract: request and answer types with their schemas, and the route table.
        .target(name: "AdminAPI", dependencies: ["Identifiers"], swiftSettings: swiftSettings),
        .target(name: "ControlProtocol", dependencies: ["Policy", "Identifiers", "Addresses"], swiftSettings: swiftSettings),

        // MARK: Runtime modules
        .target(
            name: "Actors",
            dependencies: [
                "CGatehouseSystem", "Addresses", "ControlProtocol",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "BPF",
            dependencies: ["CBPF", "BPFMaps"],
            swiftSettings: swiftSettings,
            plugins: ["BPFCompiler"]
        ),
        // The data plane shared by gateway and client: the TUN device and the WireGuard engine over it.
        .target(name: "Tunnel", dependencies: ["CGatehouseSystem", "Addresses", "Actors", "ICE", "WireGuard"], swiftSettings: swiftSettings),
        .target(
            name: "Persistence",
            dependencies: ["Identifiers", "Addresses", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: swiftSettings
        ),

        // MARK: Shells
        .target(
            name: "Portal",
            dependencies: [
                "Actors", "Persistence", "Policy", "ControlProtocol", "Identifiers", "AdminAPI", "STUN", "Addresses",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Relay",
            dependencies: [
                "Actors", "BPF", "BPFMaps", "STUN", "TURN", "ControlProtocol",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Gateway",
            dependencies: ["Actors", "Addresses", "BPF", "BPFMaps", "DNS", "ICE", "Tunnel", "WireGuard", "Policy", "ControlProtocol", "Identifiers", .product(name: "Logging", package: "swift-log"), .product(name: "Prometheus", package: "swift-prometheus"), .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Client",
            dependencies: ["Actors", "Addresses", "DNS", "ICE", "Identifiers", "Policy", "Tunnel", "WireGuard", "STUN", "ControlProtocol",
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),

        // MARK: The binary
        .executableTarget(
            name: "gatehouse",
            dependencies: [
                "Portal", "Relay", "Gateway", "Client", "BPF", "Actors", "Persistence", "Policy", "Identifiers", "AdminAPI", "Addresses",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Benchmarks (bench/): tools the benchmark scripts run, not part of the product
        .executableTarget(
            name: "relay-load",
            dependencies: ["Actors", "STUN"],
            path: "bench/RelayLoad",
            // A single-threaded command-line tool written as top-level code.
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),

        .executableTarget(
            name: "realtime-load",
            dependencies: ["Actors", "ControlProtocol", .product(name: "Logging", package: "swift-log")],
            path: "bench/RealtimeLoad",
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        .executableTarget(
            name: "gateway-bench",
            dependencies: ["Gateway", "BPF", "Actors", "ControlProtocol", "Identifiers", .product(name: "Logging", package: "swift-log")],
            path: "bench/GatewayBench",
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        .executableTarget(
            name: "portal-bench",
            dependencies: ["Portal", "Persistence", "Identifiers", .product(name: "GRDB", package: "GRDB.swift")],
            path: "bench/PortalBench",
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),

        // MARK: Fuzzing: a libFuzzer target over the STUN codec and the TURN core (scripts/fuzz builds it
        // with -sanitize=fuzzer; an ordinary build replays corpus files with it)
        .target(name: "FuzzSupport", path: "Fuzz/FuzzSupport", swiftSettings: fuzzedSettings),
        .executableTarget(
            name: "gatehouse-fuzz",
            dependencies: ["STUN", "TURN", "TURNTesting", "Addresses", "FuzzSupport"],
            path: "Fuzz/TURNFuzz",
            exclude: ["corpus", "make_seeds.py"],
            swiftSettings: fuzzedSettings,
            linkerSettings: fuzzing ? [.unsafeFlags(["-sanitize=fuzzer"])] : []
        ),

        .executableTarget(
            name: "gatehouse-fuzz-wireguard",
            dependencies: ["WireGuard", "FuzzSupport"],
            path: "Fuzz/WireGuardFuzz",
            exclude: ["corpus"],
            swiftSettings: fuzzedSettings,
            linkerSettings: fuzzing ? [.unsafeFlags(["-sanitize=fuzzer"])] : []
        ),

        // MARK: Build tooling: bpf/*.bpf.c → BPF object → Swift source embedded in the `BPF` module
        .executableTarget(name: "bpf-embed", path: "Plugins/bpf-embed"),
        .plugin(
            name: "BPFCompiler",
            capability: .buildTool(),
            dependencies: ["bpf-embed"]
        ),

        // MARK: Tests
        .target(
            name: "TestSupport",
            dependencies: ["Actors", "CGatehouseSystem"],
            path: "Tests/TestSupport"
        ),
        .testTarget(
            name: "AddressesTests",
            dependencies: ["Addresses"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ActorsTests",
            dependencies: ["Actors", "Addresses", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BPFTests",
            dependencies: ["Actors", "BPF", "BPFMaps", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "AdminAPITests",
            dependencies: ["AdminAPI", "Identifiers"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ControlProtocolTests",
            dependencies: ["ControlProtocol", "Identifiers"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IdentifiersTests",
            dependencies: ["Identifiers"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatewayTests",
            dependencies: ["Gateway", "Policy", "Addresses", "DNS", "TURN", "BPF", "BPFMaps", "Tunnel", "WireGuard", "Actors", "TestSupport", "ControlProtocol", "Identifiers"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ClientTests",
            dependencies: ["Client", "Addresses", "BPF", "ICE", "STUN", "Tunnel", "WireGuard", "Actors", "TestSupport", "ControlProtocol", "Identifiers"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ClusterTests",
            dependencies: ["TestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "WireGuardTests",
            dependencies: ["WireGuard", "TestSupport", "Actors", "Addresses"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PolicyTests",
            dependencies: ["Policy", "Addresses", "Identifiers"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PortalTests",
            dependencies: [
                "TestSupport", "Portal", "Persistence", "Policy", "Identifiers", "AdminAPI", "Actors",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PersistenceTests",
            dependencies: ["Persistence", "Identifiers", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ICETests",
            dependencies: ["ICE", "Addresses", "STUN", "TURN", "TURNTesting", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RelayTests",
            dependencies: ["Actors", "BPF", "Relay", "STUN", "TURN", "TURNTesting", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "TURNTests",
            dependencies: ["TURN", "TURNTesting", "STUN", "Addresses"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "STUNTests",
            dependencies: ["STUN", "TURN", "Addresses", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "TestSupportTests",
            dependencies: ["Actors", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatehouseCLITests",
            dependencies: ["TestSupport"],
            swiftSettings: swiftSettings
        ),
    ]
)

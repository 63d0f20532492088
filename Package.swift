// swift-tools-version: 6.2
import PackageDescription

// Our own targets treat every warning as an error: the quality bar is "no warnings in our code".
// CI's AddressSanitizer step sets SECRET_ROTATOR_ASAN=1 and rebuilds only this package's code
// with ASan in the same build tree: the dependencies keep their debug build, so the step costs
// minutes instead of a second full build (readdir records and stat buffers are read here).
let asan = Context.environment["SECRET_ROTATOR_ASAN"] == "1"
// Tests/Fuzz/run.sh sets SECRET_ROTATOR_FUZZ=1: the manifest then also has the libFuzzer targets
// ConfigFuzz and APIAnswerFuzz (never otherwise, so no shipped build contains them), and this
// package's own code is compiled with -sanitize=fuzzer,address: edge coverage, 8-bit counters
// and comparison tracing for libFuzzer to steer by, and ASan to turn a bad read into a crash.
// Dependencies keep their debug build (same build tree, minutes instead of a full rebuild), so
// libFuzzer sees no coverage inside TOMLKit/toml++ or the JSON decoder, only in our code.
let fuzz = Context.environment["SECRET_ROTATOR_FUZZ"] == "1"
let sanitizers = fuzz ? "-sanitize=fuzzer,address" : "-sanitize=address"
let strict: [SwiftSetting] = [.treatAllWarnings(as: .error)] + (asan || fuzz ? [.unsafeFlags([sanitizers])] : [])
// Our other executables and the tests link only the ASan runtime, which also defines the
// coverage callbacks; the fuzz executables link libFuzzer (fuzzLink below).
let sanitizerLink: [LinkerSetting] = asan || fuzz ? [.unsafeFlags(["-sanitize=address"])] : []

let package = Package(
    name: "secret-rotator",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "SecretRotator", targets: ["SecretRotator"]),
        .library(name: "GenAuthMock", targets: ["GenAuthMock"]),
        .executable(name: "secret-rotator", targets: ["secret-rotator"]),
        .executable(name: "genauth-mock", targets: ["genauth-mock"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", exact: "0.6.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // Already in the graph via async-http-client; declared for TLSConfiguration (ca_file).
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.30.0"),
        // Already in the graph via async-http-client; SHA-256 fingerprints of secrets in the state journal.
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // No traits: the default SubprocessFoundation trait would pull full Foundation into the binary.
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2", traits: []),
        // Already in the graph via swift-nio; HeapModule orders the engine's idle apps by due date.
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        // The state store: SQLite in WAL mode, Debian's libsqlite3 (apt: libsqlite3-dev).
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        // Metrics: swift-metrics is the API the engine reports through (Counter, Gauge,
        // Timer, Recorder), swift-prometheus the backend whose registry renders the Prometheus text
        // format we write as a node_exporter textfile (no listening port; Architecture, Metrics).
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // libsystemd for sd_notify and native journald entries (apt: libsystemd-dev).
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        // statx(2) attributes (immutable, append-only, mount point) for the output pre-flight.
        .target(name: "CLinuxFiles"),
        // sd-bus (libsystemd): reload or restart a consumer unit and read its state back. In C
        // because sd-bus's message API is variadic, which Swift cannot call.
        .target(name: "CSystemdBus", linkerSettings: [.linkedLibrary("systemd")]),
        .target(
            name: "SecretRotator",
            dependencies: [
                "CSystemd",
                "CLinuxFiles",
                "CSystemdBus",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "GenAuthMock",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                // HTTPS on request (tests of the client's ca_file); already linked by the daemon.
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "secret-rotator",
            dependencies: [
                "SecretRotator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                // The demo's consumer check calls the mock's token endpoint; already linked.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                "GenAuthMock",
            ],
            swiftSettings: strict,
            linkerSettings: sanitizerLink
        ),
        .executableTarget(
            name: "genauth-mock",
            dependencies: [
                "GenAuthMock",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict,
            linkerSettings: sanitizerLink
        ),
        // Test machinery, never packaged (build-deb.sh packs only secret-rotator and
        // genauth-mock): a process that rewrites a file in a loop for the SIGKILL tests.
        .executableTarget(
            name: "secret-rotator-write-loop",
            dependencies: [
                "SecretRotator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Tests/WriteLoop",
            swiftSettings: strict,
            linkerSettings: sanitizerLink
        ),
        // Test helpers shared by the suites (waiting, a manual clock, in-memory fakes at the
        // engine's seams, the engine fixture), as swift-service-lifecycle's
        // ServiceLifecycleTestKit: a target of its own and no product. A test target, not a
        // regular one, because it reads the library's internals through `@testable import`:
        // `swift build -c release` (build-deb.sh) builds every regular target, and a release
        // module is not compiled for testing; test targets are built only with the tests.
        .testTarget(
            name: "SecretRotatorTestKit",
            dependencies: [
                "SecretRotator",
                "GenAuthMock",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ],
            path: "Tests/SecretRotatorTestKit",
            swiftSettings: [.treatAllWarnings(as: .error)] + (asan || fuzz ? [.unsafeFlags(["-sanitize=address"])] : []),
            linkerSettings: sanitizerLink
        ),
        .testTarget(
            name: "SecretRotatorTests",
            dependencies: [
                "SecretRotator",
                "SecretRotatorTestKit",
                "GenAuthMock",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                // To tamper with the state database as a crash or an operator could.
                .product(name: "GRDB", package: "GRDB.swift"),
                // swift-log's own test handler: tests assert on an entry's `event` metadata.
                .product(name: "InMemoryLogging", package: "swift-log"),
                // The mock's HTTPS certificates in the reload tests.
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            // Read by the test through #filePath; not a resource of the bundle.
            exclude: ["Rotation/AppTransitionsTable.txt"],
            swiftSettings: asan || fuzz ? [.unsafeFlags(["-sanitize=address"])] : [],
            linkerSettings: sanitizerLink
        ),
    ]
)

if fuzz {
    let fuzzLink: [LinkerSetting] = [.unsafeFlags([sanitizers])]
    package.products += [
        .executable(name: "ConfigFuzz", targets: ["ConfigFuzz"]),
        .executable(name: "APIAnswerFuzz", targets: ["APIAnswerFuzz"]),
    ]
    package.targets += [
        // Declares LLVMFuzzerRunDriver: SwiftPM links executables with --defsym main=<module>_main,
        // so each fuzz target's own main.swift hands over to libFuzzer's driver.
        .systemLibrary(name: "CLibFuzzer", path: "Tests/Fuzz/CLibFuzzer"),
        .executableTarget(
            name: "ConfigFuzz",
            dependencies: ["SecretRotator", "CLibFuzzer", .product(name: "TOMLKit", package: "TOMLKit")],
            path: "Tests/Fuzz/ConfigFuzz",
            swiftSettings: strict,
            linkerSettings: fuzzLink
        ),
        .executableTarget(
            name: "APIAnswerFuzz",
            dependencies: ["SecretRotator", "CLibFuzzer"],
            path: "Tests/Fuzz/APIAnswerFuzz",
            swiftSettings: strict,
            linkerSettings: fuzzLink
        ),
    ]
}

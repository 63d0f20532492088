import Foundation
import Synchronization
import Testing

@testable import SecretRotator

/// A real 3-member etcd cluster (Debian's `etcd-server`) on 127.0.0.1, in a temporary
/// directory, started per test and stopped by PID.
/// Without /usr/bin/etcd the tests that need it are skipped, unless
/// `SECRET_ROTATOR_ETCD_REQUIRED=1` (CI) makes that a failure.
final class EtcdTestCluster: Sendable {
    static let binary = "/usr/bin/etcd"
    static var available: Bool { FileManager.default.isExecutableFile(atPath: binary) }
    static var required: Bool { ProcessInfo.processInfo.environment["SECRET_ROTATOR_ETCD_REQUIRED"] == "1" }

    let directory: URL
    let clientPorts: [Int]
    let peerPorts: [Int]
    /// Client URLs are https:// with client certificates required when set.
    let tls: EtcdTLSFixture?
    /// Added to every member's command line (e.g. `--auth-token-ttl`).
    let extraArguments: [String]
    private let processes = Mutex<[Int: Process]>([:])

    var endpoints: [String] { clientPorts.map { "\(tls == nil ? "http" : "https")://127.0.0.1:\($0)" } }

    /// - Parameters:
    ///   - tls: certificates for `--client-cert-auth`; each member serves `tls.serverCert`.
    ///   - extraArguments: more etcd flags for every member.
    ///   - waitUntilHealthy: false for a cluster whose gateway is not expected to answer.
    init(tls: ((URL) throws -> EtcdTLSFixture)? = nil, extraArguments: [String] = [], waitUntilHealthy: Bool = true) async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("sr-etcd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        self.tls = try tls?(directory)
        self.extraArguments = extraArguments
        let ports = try Self.freePorts(6)
        clientPorts = Array(ports[0..<3])
        peerPorts = Array(ports[3..<6])
        for member in 0..<3 { try start(member) }
        if waitUntilHealthy { try await waitHealthy() }
    }

    private var initialCluster: String {
        (0..<3).map { "m\($0)=http://127.0.0.1:\(peerPorts[$0])" }.joined(separator: ",")
    }

    /// Starts member `index` (again, with its data directory kept after a `stop`).
    func start(_ index: Int) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = [
            "--name", "m\(index)", "--data-dir", directory.appendingPathComponent("m\(index)").path,
            "--listen-peer-urls", "http://127.0.0.1:\(peerPorts[index])",
            "--initial-advertise-peer-urls", "http://127.0.0.1:\(peerPorts[index])",
            "--listen-client-urls", endpoints[index], "--advertise-client-urls", endpoints[index],
            "--initial-cluster", initialCluster, "--initial-cluster-state", "new", "--initial-cluster-token", directory.lastPathComponent,
        ] + (tls?.serverArguments ?? []) + extraArguments
        let logPath = directory.appendingPathComponent("m\(index).log").path
        if !FileManager.default.fileExists(atPath: logPath) {
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        }
        let log = FileHandle(forWritingAtPath: logPath)
        _ = try? log?.seekToEnd()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        processes.withLock { $0[index] = process }
    }

    /// SIGKILLs member `index` and waits for it to be gone.
    func kill(_ index: Int) {
        guard let process = processes.withLock({ $0.removeValue(forKey: index) }) else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// SIGSTOP / SIGCONT member `index`: frozen, it keeps its connections open and answers nothing.
    func freeze(_ index: Int, _ frozen: Bool = true) {
        guard let process = processes.withLock({ $0[index] }) else { return }
        Foundation.kill(process.processIdentifier, frozen ? SIGSTOP : SIGCONT)
    }

    func stopAll() {
        for index in 0..<3 { freeze(index, false) }
        for index in 0..<3 { kill(index) }
        try? FileManager.default.removeItem(at: directory)
    }

    /// Until every running member answers a read (which needs quorum), at most 30 s.
    func waitHealthy(members: [Int]? = nil) async throws {
        let deadline = Date().addingTimeInterval(30)
        let wanted = members ?? processes.withLock { Array($0.keys) }
        while Date() < deadline {
            var all = true
            for member in wanted where !(await healthy(member)) { all = false }
            if all { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw EtcdTestClusterError("etcd members \(wanted) not healthy within 30 s; logs in \(directory.path)")
    }

    /// Whether member `index` answers a read; before `auth enable` (tests turn it on once healthy).
    func healthy(_ index: Int) async -> Bool {
        var settings = ClusterSettings(endpoints: [endpoints[index]], prefix: "/health", host: "probe")
        tls?.apply(to: &settings)
        guard let client = try? EtcdGatewayClient(settings: settings, unaryTimeout: .seconds(1)) else { return false }
        let healthy = (try? await client.range(prefix: "/health")) != nil
        await client.shutdown()
        return healthy
    }

    static func freePorts(_ count: Int) throws -> [Int] {
        var sockets: [Int32] = []
        defer { sockets.forEach { close($0) } }
        var ports: [Int] = []
        for _ in 0..<count {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            sockets.append(fd)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
            }
            guard bound else { throw EtcdTestClusterError("cannot find a free port") }
            ports.append(Int(UInt16(bigEndian: address.sin_port)))
        }
        return ports
    }
}

struct EtcdTestClusterError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs `body` with a fresh 3-member cluster, stopped afterwards; skipped (or failed, in CI)
/// without etcd.
func withEtcdCluster(
    tls: ((URL) throws -> EtcdTLSFixture)? = nil, extraArguments: [String] = [], waitUntilHealthy: Bool = true,
    _ body: (EtcdTestCluster) async throws -> Void
) async throws {
    guard EtcdTestCluster.available else {
        if EtcdTestCluster.required { Issue.record("SECRET_ROTATOR_ETCD_REQUIRED=1 but \(EtcdTestCluster.binary) is missing") }
        return
    }
    let cluster = try await EtcdTestCluster(tls: tls, extraArguments: extraArguments, waitUntilHealthy: waitUntilHealthy)
    defer { cluster.stopAll() }
    try await body(cluster)
}

/// Runs `body` with a gateway client for `settings`, shut down however `body` ends
/// (async-http-client traps on a client that is not shut down).
func withGatewayClient(
    _ settings: ClusterSettings, unaryTimeout: Duration = .milliseconds(500), livenessInterval: Duration = .milliseconds(500),
    _ body: (EtcdGatewayClient) async throws -> Void
) async throws {
    let client = try EtcdGatewayClient(
        settings: settings, unaryTimeout: unaryTimeout, livenessInterval: livenessInterval, firstEndpoint: 0)
    do {
        try await body(client)
    } catch {
        await client.shutdown()
        throw error
    }
    await client.shutdown()
}

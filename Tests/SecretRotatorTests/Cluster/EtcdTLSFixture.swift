import Foundation

@testable import SecretRotator

/// Certificates for an etcd cluster with `--client-cert-auth`, made with openssl(1) in the
/// cluster's directory at test time: a CA, the members' server certificate for 127.0.0.1 (with
/// the extended key usages given), a client certificate without a CommonName (`client`, what
/// etcd's gateway accepts once auth is enabled) and one with `CN=rotator` (`named`).
struct EtcdTLSFixture: Sendable {
    let directory: URL

    func path(_ file: String) -> String { directory.appendingPathComponent(file).path }

    /// The member flags: TLS on the client URLs, client certificates required.
    var serverArguments: [String] {
        ["--client-cert-auth", "--trusted-ca-file", path("ca.pem"), "--cert-file", path("server.pem"), "--key-file", path("server.key")]
    }

    /// Sets `settings`' TLS files: the CA and the client certificate `client` (`client` or `named`).
    func apply(to settings: inout ClusterSettings, client: String = "client") {
        settings.caFile = path("ca.pem")
        settings.certFile = path("\(client).pem")
        settings.keyFile = path("\(client).key")
    }

    /// - Parameter serverUsage: the member certificate's extendedKeyUsage, e.g. `serverAuth`
    ///   alone to reproduce the gateway that cannot reach its own member.
    init(in parent: URL, serverUsage: String = "serverAuth,clientAuth") throws {
        directory = parent.appendingPathComponent("tls")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let script = """
            set -e
            cd '\(directory.path)'
            key() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $1.key -out $1.csr -subj "$2"; }
            sign() { openssl x509 -req -in $1.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $1.pem -days 2 -extfile $1.ext; }
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=etcd-test-ca
            key server /CN=etcd-member
            printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=\(serverUsage)\\n' > server.ext
            sign server
            key client /O=secret-rotator
            key named /CN=rotator
            for name in client named; do printf 'basicConstraints=CA:FALSE\\nextendedKeyUsage=clientAuth\\n' > $name.ext; sign $name; done
            chmod 0600 *.key
            """
        let status = try runQuietly(script)
        guard status == 0 else { throw EtcdTestClusterError("openssl failed (\(status))") }
    }
}

/// Runs `script` with /bin/sh, its output discarded (certificate fixtures); its exit status.
func runQuietly(_ script: String) throws -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", script]
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    return process.terminationStatus
}

extension EtcdTestCluster {
    static let etcdctl = "/usr/bin/etcdctl"

    /// Runs etcdctl against the cluster with the fixture's client certificate (and `--user`
    /// when given); returns its output, throws when it fails.
    @discardableResult
    func etcdctl(_ arguments: [String], user: String? = nil) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.etcdctl)
        var flags = ["--endpoints=\(endpoints.joined(separator: ","))"]
        if let tls {
            flags += ["--cacert=\(tls.path("ca.pem"))", "--cert=\(tls.path("client.pem"))", "--key=\(tls.path("client.key"))"]
        }
        if let user { flags.append("--user=\(user)") }
        process.arguments = flags + arguments
        process.environment = ["ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw EtcdTestClusterError("etcdctl \(arguments.joined(separator: " ")): \(text)") }
        return text
    }

    /// Access control as the README sets it up: `root`, a role `rotator-role` with readwrite on
    /// `<prefix>/` only, the user `rotator` holding it, a user `intruder` without it, then
    /// `auth enable`. Passwords are the user name + "-pw" (test only).
    func enableAccessControl(prefix: String) throws {
        try etcdctl(["user", "add", "root:root-pw", "--interactive=false"])
        try etcdctl(["role", "add", "rotator-role"])
        try etcdctl(["role", "grant-permission", "rotator-role", "--prefix=true", "readwrite", prefix + "/"])
        for user in ["rotator", "intruder"] { try etcdctl(["user", "add", "\(user):\(user)-pw", "--interactive=false"]) }
        try etcdctl(["user", "grant-role", "rotator", "rotator-role"])
        try etcdctl(["auth", "enable"])
    }
}

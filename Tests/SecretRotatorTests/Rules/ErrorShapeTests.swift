import Testing

@testable import SecretRotator

/// Errors of every domain carry a code, a message, a typed cause and where they were raised;
/// the text logs show stays what it was when the cause was a string.
@Suite struct ErrorShapeTests {
    struct Underlying: Error, CustomStringConvertible {
        var description: String { "connection refused (errno 111)" }
    }

    static let clusterRows: [(error: ClusterStoreError, text: String, etcdText: String?)] = [
        (ClusterStoreError(.rejected, "etcd refused /v3/kv/put", endpoint: "http://a:2379", etcdSaid: "etcdserver: no leader"),
         "etcd refused /v3/kv/put (http://a:2379): etcdserver: no leader", "etcdserver: no leader"),
        (ClusterStoreError(.unreachable, "/v3/kv/range failed", endpoint: "http://a:2379", cause: Underlying()),
         "/v3/kv/range failed (http://a:2379): connection refused (errno 111)", nil),
        (ClusterStoreError(.timeout, "the member stopped answering", endpoint: "http://b:2379",
                           cause: ClusterStoreError(.rejected, "etcd refused the liveness read", endpoint: "http://b:2379", etcdSaid: "x")),
         "the member stopped answering (http://b:2379): etcd refused the liveness read", nil),
        (ClusterStoreError(.badAnswer, "range answered without a header", etcdSaid: nil), "range answered without a header", nil),
        (ClusterStoreError(.rejected, "campaign failed", etcdSaid: ""), "campaign failed", ""),
    ]

    @Test func clusterErrorsReadAsBefore() {
        for row in Self.clusterRows {
            #expect(row.error.description == row.text)
            #expect(row.error.etcdText == row.etcdText, "\(row.text)")
            #expect(row.error.location.hasPrefix("SecretRotatorTests/"), "\(row.error.location)")
        }
    }

    @Test func outputErrorsCompareByWhatTheySay() {
        let first = OutputError(.renameFailed, path: "/etc/app/secret", errno: .noSpace, reason: "cannot rename")
        let second = OutputError(.renameFailed, path: "/etc/app/secret", errno: .noSpace, reason: "cannot rename", cause: Underlying())
        #expect(first == second)
        #expect(first.location != second.location)
        #expect(first.code.rawValue == "renameFailed")
        #expect(OutputError(.notWritten, path: "/x", reason: "r") != OutputError(.invalidSpec, path: "/x", reason: "r"))
    }

    @Test func lockErrorsHaveUniqueNames() {
        let app = AppLockError(.unavailable, appID: "a", path: "/run/x", reason: "EACCES")
        let directory = StateDirectoryLockError(.unavailable, path: "/var/lib/x/lock", reason: "EROFS")
        let held = StateDirectoryLockError(.heldByAnother, path: "/var/lib/x/lock", holder: 42, reason: "held")
        #expect(app.description == "cannot lock app a at /run/x: EACCES" && !app.isHeldByAnother)
        #expect(directory.description == "cannot lock /var/lib/x/lock: EROFS" && !directory.isHeldByAnother)
        #expect(held.isHeldByAnother && held.description.contains("(PID 42)"))
    }
}

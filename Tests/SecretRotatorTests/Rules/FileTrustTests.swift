import Testing

@testable import SecretRotator

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The owner and mode rule every trusted path goes through: the config and templates
/// (`ConfigFileReader`), output directories (`SafeDirectory`) and the state database.
@Suite struct FileTrustTests {
    static let daemon: uid_t = 990
    static let stranger: uid_t = 1000
    static let operatorUser: uid_t = 1001

    struct Row {
        var name: String
        var rule: FileTrust
        var owner: uid_t
        var mode: UInt16
        var place: FileTrust.Place
        var expected: FileTrust.Problem?

        init(_ name: String, _ rule: FileTrust, _ owner: uid_t, _ mode: UInt16, _ place: FileTrust.Place, _ expected: FileTrust.Problem?) {
            (self.name, self.rule, self.owner, self.mode, self.place, self.expected) = (name, rule, owner, mode, place, expected)
        }
    }

    static let inputs = FileTrust.daemonInputs(daemonUser: daemon)
    static let outputs = FileTrust.outputDirectories(effectiveUser: 0, daemonUser: daemon)
    static let outputsAlone = FileTrust.outputDirectories(effectiveUser: daemon, daemonUser: nil)
    static let database = FileTrust.stateDatabase(effectiveUser: daemon, stateDirectoryOwner: operatorUser, actingForDaemon: false)
    static let databaseForDaemon = FileTrust.stateDatabase(effectiveUser: 0, stateDirectoryOwner: daemon, actingForDaemon: true)
    static let databaseByMonitor = FileTrust.stateDatabase(effectiveUser: operatorUser, stateDirectoryOwner: daemon, actingForDaemon: true)

    static let rows: [Row] = [
        // Inputs (config, template, hook program and the directories on their paths).
        Row("input: root 0644 file", inputs, 0, 0o100644, .file, nil),
        Row("input: daemon 0600 file", inputs, daemon, 0o100600, .file, nil),
        Row("input: stranger's file", inputs, stranger, 0o100600, .file, .owner(stranger)),
        Row("input: group-writable file", inputs, 0, 0o100664, .file, .mode(0o664)),
        Row("input: world-writable file", inputs, daemon, 0o100646, .file, .mode(0o646)),
        Row("input: group-readable file is fine", inputs, 0, 0o100640, .file, nil),
        Row("input: owner checked before mode", inputs, stranger, 0o100666, .file, .owner(stranger)),
        Row("input: sticky /tmp on the way", inputs, 0, 0o041777, .ancestorDirectory, nil),
        Row("input: sticky directory holding the file", inputs, 0, 0o041777, .finalDirectory, .mode(0o777)),
        Row("input: writable ancestor without sticky", inputs, 0, 0o040777, .ancestorDirectory, .mode(0o777)),
        Row("input: stranger's sticky ancestor", inputs, stranger, 0o041777, .ancestorDirectory, .owner(stranger)),
        Row("input: setgid directory 2755", inputs, 0, 0o042755, .finalDirectory, nil),
        // Output directories, as root acting for a daemon that runs as its own user.
        Row("output: root's directory", outputs, 0, 0o040755, .ancestorDirectory, nil),
        Row("output: the daemon's directory", outputs, daemon, 0o040750, .finalDirectory, nil),
        Row("output: a stranger's directory", outputs, stranger, 0o040700, .ancestorDirectory, .owner(stranger)),
        Row("output: group-writable final directory", outputs, daemon, 0o040770, .finalDirectory, .mode(0o770)),
        Row("output: alone, the state owner is not trusted", outputsAlone, operatorUser, 0o040700, .finalDirectory, .owner(operatorUser)),
        Row("output: alone, our own directory", outputsAlone, daemon, 0o040700, .finalDirectory, nil),
        // The state database: a private file, whose wider mode is narrowed by the caller.
        Row("database: ours 0600", database, daemon, 0o100600, .file, nil),
        Row("database: ours 0644 (narrowed)", database, daemon, 0o100644, .file, .mode(0o644)),
        Row("database: ours 0640 (narrowed)", database, daemon, 0o100640, .file, .mode(0o640)),
        Row("database: the state owner's, not acting for it", database, operatorUser, 0o100600, .file, .owner(operatorUser)),
        Row("database: root's, read by the daemon", database, 0, 0o100600, .file, .owner(0)),
        Row("database: the daemon's, root acting for it", databaseForDaemon, daemon, 0o100600, .file, nil),
        Row("database: root's, root acting", databaseForDaemon, 0, 0o100600, .file, nil),
        Row("database: the daemon's, a monitoring user reading", databaseByMonitor, daemon, 0o100600, .file, nil),
        Row("database: a stranger's", databaseByMonitor, stranger, 0o100600, .file, .owner(stranger)),
    ]

    @Test func everyRowMatches() {
        for row in Self.rows {
            #expect(row.rule.problem(owner: row.owner, mode: row.mode, place: row.place) == row.expected, "\(row.name)")
        }
    }

    /// The callers' words for each problem are theirs; the verdict is the rule's.
    @Test func configReaderWordsTheRulesVerdict() {
        let me = ConfigFileReader.daemonUID
        let stranger: uid_t = me == 4242 ? 4243 : 4242
        #expect(ConfigFileReader.trustProblem(owner: me, mode: 0o600, what: "config file /c") == nil)
        #expect(
            ConfigFileReader.trustProblem(owner: stranger, mode: 0o600, what: "config file /c")?
                .hasPrefix("refusing config file /c: owned by uid \(stranger)") == true)
        #expect(
            ConfigFileReader.trustProblem(owner: 0, mode: 0o620, what: "config file /c")
                == "refusing config file /c: writable by group or others (mode 0620); chmod go-w it")
        #expect(ConfigFileReader.trustProblem(owner: 0, mode: 0o1777, place: .ancestorDirectory, what: "the directory /tmp of x") == nil)
        #expect(ConfigFileReader.trustProblem(owner: 0, mode: 0o1777, place: .finalDirectory, what: "the directory /tmp of x") != nil)
    }
}

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Crypto
import GRDB
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The daemon's private state directory and its layout (Architecture, "State directory"):
///
///     <state>/lock                  flock held by the one writer (StateDirectoryLock)
///     <state>/state.sqlite          the state database (`StateDatabase`), 0600, WAL:
///                                   app records, intents, current secrets
///     <state>/state.sqlite-wal,-shm SQLite's write-ahead log and its index
///     <state>/requests/             operator requests (`rotate`, `fetch`) for a running daemon
///     <state>/corrupt/              unreadable databases and JSON records, moved aside
///
/// `createDirectory()` makes a missing directory 0700; the package makes it 0711, so that readers
/// can traverse to the drop directory `secrets/` without listing the state. A record is
/// durable when a save (or `commit`) returns. `prepare()` imports the JSON records of the
/// older file-based layouts into the database: `apps/<app>.json` and `current/<app>.json`,
/// `pending/`, and `secrets/<app>.json` (whose name is shared with the default drop
/// directory `/var/lib/secret-rotator/secrets`).
///
/// Outputs may not be placed in here, except in a subdirectory that is not one of these
/// (`OutputPathConflicts`); the default drop directory `<state>/secrets` is such a one.
public struct StateDirectory: Sendable {
    public let path: String
    let writer = AtomicFileWriter()
    /// The database, opened on first use and shared by copies of this value.
    let store = Store()

    public init(path: String) {
        self.path = path
    }

    public var lockPath: String { "\(path)/lock" }
    public var requestsPath: String { "\(path)/requests" }
    public var databasePath: String { "\(path)/\(StateDatabase.fileName)" }
    var appsPath: String { "\(path)/apps" }
    var secretsPath: String { "\(path)/current" }
    var legacySecretsPath: String { "\(path)/secrets" }

    /// The names in here that belong to the state directory: no output may be one of them or below one.
    public static let ownEntries: Set<String> = [
        "lock", "apps", "current", "requests", "corrupt", "pending",
        StateDatabase.fileName, StateDatabase.fileName + "-wal", StateDatabase.fileName + "-shm",
        StateDatabase.fileName + "-journal",
    ]
    var legacyPendingPath: String { "\(path)/pending" }
    var corruptPath: String { "\(path)/corrupt" }

    /// A record that could not be decoded, reported instead of silently starting over.
    public struct CorruptRecord: Sendable, Equatable {
        public let appID: String
        public let movedTo: String
        public let reason: String
    }

    final class Store: Sendable {
        let opened = Mutex<(database: StateDatabase, commits: GroupCommit)?>(nil)
    }

    /// The open database, opening it (and creating it) on first use.
    func database() throws(StateDirectoryError) -> (database: StateDatabase, commits: GroupCommit) {
        let path = databasePath
        return try store.opened.withLock { (opened) throws(StateDirectoryError) -> (database: StateDatabase, commits: GroupCommit) in
            if let opened { return opened }
            let database = try StateDatabase.open(path: path)
            let made = (database: database, commits: GroupCommit(database: database))
            opened = made
            return made
        }
    }

    /// Creates the directory (0700), opens the database (moving an unreadable one aside) and
    /// imports the records of the file-based store. Returns the records found unreadable on
    /// the way, each moved aside, for the caller to report.
    @discardableResult
    public func prepare(now: Date = Date()) throws(StateDirectoryError) -> [CorruptRecord] {
        try createDirectory()
        var corrupt: [CorruptRecord] = []
        do {
            _ = try database()
        } catch where error.code == .corruptDatabase {
            corrupt.append(moveDatabaseAside(now: now, reason: error.message))
            _ = try database()
        }
        try migrateLegacyPending()
        try migrateLegacySecrets()
        corrupt += try importJSONRecords(now: now)
        return corrupt
    }

    /// Creates the directory and `corrupt/` (0700) and checks the path is safe, without
    /// opening the database: what the daemon needs before it takes the lock; `prepare()`
    /// then runs under the lock. (Opening and dropping a database also disposes of its
    /// dispatch queues, which starts libdispatch's 1 Hz workqueue monitor for good.)
    public func createDirectory() throws(StateDirectoryError) {
        for directory in [path, corruptPath] {
            if mkdir(directory, 0o700) != 0 && errno != EEXIST {
                throw StateDirectoryError(
                    .unavailable, path: directory, errno: Errno(rawValue: errno), message: "cannot create the directory")
            }
        }
        // The records decide what is written where, so the directory is trusted only as an
        // output directory would be: no link on the way, nothing another user can change.
        do {
            let descriptor = try SafeDirectory.open(
                path, target: path, allowUnsafe: false, action: "keep state in",
                daemonUser: SafeDirectory.daemonUser(stateDirectory: path))
            try? descriptor.close()
        } catch where error.code == .unsafeDirectory {
            throw StateDirectoryError(.unavailable, path: path, message: error.reason)
        } catch {
            throw StateDirectoryError(.unavailable, path: path, errno: error.errno, message: "cannot open the directory")
        }
    }

    // MARK: - Records

    public func loadState(appID: String, now: Date) -> (state: AppState?, corrupt: CorruptRecord?) {
        guard let database = try? database().database else { return (nil, nil) }
        let found = database.load(AppState.self, appID: appID, now: now)
        return (found.record, found.corrupt)
    }

    public func loadSecret(appID: String, now: Date) -> (secret: CurrentSecret?, corrupt: CorruptRecord?) {
        guard let database = try? database().database else { return (nil, nil) }
        let found = database.load(CurrentSecret.self, appID: appID, now: now)
        return (found.record, found.corrupt)
    }

    /// Every configured app's records at start-up, in one read: app records, and the version
    /// of each held secret (the secrets are decoded to check them, then dropped). Undecodable
    /// rows are moved aside (`StateDatabase.load`) and returned.
    public func loadAll(appIDs: [String], now: Date) -> (states: [String: AppState], secretVersions: [String: Int], corrupt: [CorruptRecord]) {
        guard let database = try? database().database else { return ([:], [:], []) }
        let wanted = Set(appIDs)
        var states: [String: AppState] = [:]
        var versions: [String: Int] = [:]
        var unreadable: [(AppState.Type?, String)] = []
        do {
            try database.pool.read { db in
                // Copied rows (fetchAll), not a cursor: a cursor's row reads through SQLite's
                // own type coercion, so a version of 'x' came back as 0 instead of being caught.
                let stateRows = try Row.fetchAll(db, sql: "SELECT * FROM \(AppState.databaseTableName)")
                for row in stateRows {
                    // Not `row["appID"] as String`: that traps on a value of another type.
                    guard let id = String.fromDatabaseValue(row["appID"]), wanted.contains(id) else { continue }
                    if let state = try? AppState(row: row) { states[id] = state } else { unreadable.append((AppState.self, id)) }
                }
                let secretRows = try Row.fetchAll(db, sql: "SELECT * FROM \(CurrentSecret.databaseTableName)")
                for row in secretRows {
                    guard let id = String.fromDatabaseValue(row["appID"]), wanted.contains(id) else { continue }
                    if let secret = try? CurrentSecret(row: row) { versions[id] = secret.version } else { unreadable.append((nil, id)) }
                }
            }
        } catch {
            return ([:], [:], [CorruptRecord(appID: "*", movedTo: databasePath, reason: "unreadable: \(StateDatabase.describe(error))")])
        }
        var corrupt: [CorruptRecord] = []
        for (kind, id) in unreadable {
            let moved = kind == nil
                ? database.load(CurrentSecret.self, appID: id, now: now).corrupt
                : database.load(AppState.self, appID: id, now: now).corrupt
            if let moved { corrupt.append(moved) }
        }
        return (states, versions, corrupt)
    }

    /// Saves one app record in a transaction of its own (CLI and tests; the engine commits
    /// through `commit`, which groups concurrent steps).
    public func saveState(_ state: AppState) throws(StateDirectoryError) {
        try database().database.write(StateChanges(states: [state]))
    }

    public func saveSecret(_ secret: CurrentSecret) throws(StateDirectoryError) {
        try database().database.write(StateChanges(secrets: [secret]))
    }

    /// Commits `changes` with those of other steps arriving meanwhile (`GroupCommit`);
    /// returns once they are durable, off the caller's thread.
    public func commit(_ changes: StateChanges) async throws(StateDirectoryError) {
        try await database().commits.commit(changes)
    }

    /// Transactions and change sets committed through `commit` by this value's database.
    public var commitStatistics: (transactions: Int, changeSets: Int) {
        (try? database().commits.statistics) ?? (0, 0)
    }

    /// App ids are printable ASCII but may contain characters awkward in file names; anything
    /// outside a safe set is hex-escaped so every id maps to exactly one file. An id whose
    /// escaped form would not fit a file name (up to 128 bytes escape to 384; NAME_MAX is 255
    /// with room needed for ".json" and temp-file suffixes) is keyed by its SHA-256 instead:
    /// 128 dots once passed validation and then failed every save with ENAMETOOLONG.
    public static func fileName(for appID: String) -> String {
        let escaped = escapedName(for: appID)
        guard escaped.utf8.count > maxEscapedName else { return escaped }
        let digest = SHA256.hash(data: Array(appID.utf8))
        return "sha256-" + digest.map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined()
    }

    /// Escaped names up to this length are used as they are. A long id's name ("sha256-" and
    /// 64 hex digits) could meet a short id only if that id spelled another id's digest.
    static let maxEscapedName = 128

    static func escapedName(for appID: String) -> String {
        var name = ""
        for byte in appID.utf8 {
            let safe: Bool
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "-"), UInt8(ascii: "_"):
                safe = true
            default:
                safe = false
            }
            if safe {
                name.append(Character(Unicode.Scalar(byte)))
            } else {
                let hex = String(byte, radix: 16)
                name += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return name
    }

    func statePath(_ appID: String) -> String { "\(appsPath)/\(Self.fileName(for: appID)).json" }
    func secretPath(_ appID: String) -> String { "\(secretsPath)/\(Self.fileName(for: appID)).json" }

    /// What `status` reads about one app. The secret itself is never returned, only its version.
    public struct Inspection: Sendable {
        public var state: AppState?
        public var secretVersion: Int?
        /// The held secret itself, for `status` to compare the outputs with (never printed).
        public var secret: CurrentSecret?
        public var problems: [String] = []
    }

    /// Above this many apps `inspect` reads whole tables once rather than one row per app.
    static let inspectionScanThreshold = 64

    /// The records of `appIDs` for `status`, read as they are through a read-only connection:
    /// nothing is created, repaired or moved, because a status query must not change the
    /// state under the daemon, and it never waits for the daemon's commits (WAL). Before the
    /// daemon first ran with the database, the JSON records of the file-based store are read.
    /// The second value: problems with the store as a whole (unreadable database).
    public func inspect(appIDs: [String]) -> (apps: [String: Inspection], problems: [String]) {
        let connection: DatabaseQueue?
        do {
            connection = try StateDatabase.openReadOnly(path: databasePath)
        } catch {
            return ([:], ["state database \(databasePath): \(error.message)"])
        }
        guard let connection else {
            return (Dictionary(uniqueKeysWithValues: appIDs.map { ($0, inspectJSON(appID: $0)) }), [])
        }
        var apps: [String: Inspection] = [:]
        do {
            try connection.read { db in
                // Many apps: one pass over each table; a few: one indexed lookup each.
                let scan = appIDs.count > Self.inspectionScanThreshold
                let wanted = scan ? Set(appIDs) : []
                let states = scan ? try StateDatabase.findAll(AppState.self, appIDs: wanted, in: db) : [:]
                let secrets = scan ? try StateDatabase.findAll(CurrentSecret.self, appIDs: wanted, in: db) : [:]
                for appID in appIDs {
                    var found = Inspection()
                    switch scan ? states[appID] ?? .missing : try StateDatabase.find(AppState.self, appID: appID, in: db) {
                    case .missing: break
                    case .record(let record): found.state = record
                    case .unreadable(let reason): found.problems.append("state record of \(appID) in \(databasePath): \(reason)")
                    }
                    switch scan ? secrets[appID] ?? .missing : try StateDatabase.find(CurrentSecret.self, appID: appID, in: db) {
                    case .missing: break
                    case .record(let secret):
                        found.secretVersion = secret.version
                        found.secret = secret
                    case .unreadable(let reason): found.problems.append("secret record of \(appID) in \(databasePath): \(reason)")
                    }
                    apps[appID] = found
                }
            }
        } catch {
            return ([:], ["state database \(databasePath): cannot read it: \(StateDatabase.describe(error))"])
        }
        try? connection.close()
        return (apps, [])
    }

    /// One app's records, for tests and callers that ask about one app.
    public func inspect(appID: String) -> (state: AppState?, secretVersion: Int?, problems: [String]) {
        let found = inspect(appIDs: [appID])
        let app = found.apps[appID] ?? Inspection()
        return (app.state, app.secretVersion, app.problems + found.problems)
    }

    /// What keeps the daemon from recording anything here, read without writing (statvfs):
    /// a full file system (blocks or inodes: the next record fails with ENOSPC) or a read-only
    /// one (EROFS). Empty when the directory can take a write, or does not exist yet.
    public func capacityProblems() -> [String] {
        guard let capacity = VolumeCapacity.of(path) else { return [] }
        return capacity.problems().map { problem in
            switch problem {
            case .readOnly: "state directory \(path) is on a read-only file system (EROFS): no step can be recorded"
            case .noSpace: "state directory \(path) has no space left (ENOSPC): no step can be recorded"
            case .noInodes: "state directory \(path) has no inodes left (ENOSPC): no step can be recorded"
            }
        }
    }

}

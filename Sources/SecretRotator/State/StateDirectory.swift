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
    private let writer = AtomicFileWriter()
    /// The database, opened on first use and shared by copies of this value.
    private let store = Store()

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

    private final class Store: Sendable {
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

    private static func escapedName(for appID: String) -> String {
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

    // MARK: - JSON records of the file-based store

    /// A JSON record as found on disk.
    private enum Found<Record> {
        case missing
        case record(Record)
        case unreadable(String)
    }

    private func findJSON<Record: Decodable>(_ type: Record.Type, at target: String) -> Found<Record> {
        let contents: [UInt8]
        do {
            contents = try SmallFile.read(target, limit: 1 << 20, followSymlinks: false).bytes
        } catch {
            if case .system(.noSuchFileOrDirectory, _) = error { return .missing }
            return .unreadable("unreadable: \(error)")
        }
        do {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .millisecondsSince1970
            return .record(try decoder.decode(Record.self, from: Data(contents)))
        } catch {
            return .unreadable("not a valid record")
        }
    }

    private func inspectJSON(appID: String) -> Inspection {
        var found = Inspection()
        switch findJSON(AppState.self, at: statePath(appID)) {
        case .missing: break
        case .record(let record): found.state = record
        case .unreadable(let reason): found.problems.append("state record \(statePath(appID)): \(reason)")
        }
        for candidate in [
            secretPath(appID), "\(legacyPendingPath)/\(Self.fileName(for: appID)).json",
            "\(legacySecretsPath)/\(Self.fileName(for: appID)).json",
        ] {
            switch findJSON(CurrentSecret.self, at: candidate) {
            case .missing: continue
            case .record(let secret):
                if secret.version >= (found.secretVersion ?? 0) {
                    found.secretVersion = secret.version
                    found.secret = secret
                }
            case .unreadable(let reason): found.problems.append("secret record \(candidate): \(reason)")
            }
        }
        return found
    }

    private func moveAside(_ target: String, appID: String, now: Date, reason: String) -> CorruptRecord {
        let stamp = Int64(now.timeIntervalSince1970 * 1000)
        let name = FilePath(target).lastComponent?.string ?? "record"
        let destination = "\(corruptPath)/\(name).\(stamp)"
        _ = rename(target, destination)
        return CorruptRecord(appID: appID, movedTo: destination, reason: reason)
    }

    /// A database SQLite cannot read (SQLITE_NOTADB, SQLITE_CORRUPT) goes to `corrupt/` with
    /// its WAL, and a new one is started: every app then reads GenAuth's current secret.
    private func moveDatabaseAside(now: Date, reason: String) -> CorruptRecord {
        let stamp = Int64(now.timeIntervalSince1970 * 1000)
        var movedTo = ""
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let source = databasePath + suffix
            let destination = "\(corruptPath)/\(StateDatabase.fileName)\(suffix).\(stamp)"
            if rename(source, destination) == 0 && suffix.isEmpty { movedTo = destination }
        }
        syncDirectory(corruptPath)
        syncDirectory(path)
        return CorruptRecord(appID: "*", movedTo: movedTo, reason: reason)
    }

    /// Imports `apps/*.json` and `current/*.json` into the database in one transaction (of a
    /// row and a file for one app, the higher version wins; a tie keeps the row), then
    /// removes the files and their directories. A crash in between imports again: the same
    /// outcome. Unreadable files are moved to `corrupt/` and returned.
    private func importJSONRecords(now: Date) throws(StateDirectoryError) -> [CorruptRecord] {
        let stateFiles = (try? DirectoryListing.entries(atPath: appsPath))?.map(\.name) ?? []
        let secretFiles = (try? DirectoryListing.entries(atPath: secretsPath))?.map(\.name) ?? []
        if stateFiles.isEmpty && secretFiles.isEmpty {
            _ = rmdir(appsPath)
            _ = rmdir(secretsPath)
            return []
        }
        var corrupt: [CorruptRecord] = []
        var imported: [String] = []
        /// The records of one directory's `*.json` files; unreadable ones are moved aside.
        func read<Record: Decodable>(_ type: Record.Type, _ names: [String], in directory: String) -> [Record] {
            var records: [Record] = []
            for name in names where name.hasSuffix(".json") && !name.hasPrefix(".") {
                let file = "\(directory)/\(name)"
                switch findJSON(type, at: file) {
                case .missing: continue
                case .record(let record):
                    records.append(record)
                    imported.append(file)
                case .unreadable(let reason):
                    corrupt.append(moveAside(file, appID: String(name.dropLast(5)), now: now, reason: reason))
                }
            }
            return records
        }
        let states = read(AppState.self, stateFiles, in: appsPath)
        let secrets = read(CurrentSecret.self, secretFiles, in: secretsPath)
        let database = try database().database
        do {
            try database.pool.write { db in
                // The higher version wins, for app records as for secrets: after a downgrade
                // and an upgrade the JSON records are newer than the database's rows.
                for state in states {
                    if let existing = try? AppState.fetchOne(db, key: state.appID), existing.version >= state.version { continue }
                    try state.insert(db, onConflict: .replace)
                }
                for secret in secrets {
                    if let existing = try? CurrentSecret.fetchOne(db, key: secret.appID), existing.version >= secret.version { continue }
                    try secret.insert(db, onConflict: .replace)
                }
            }
        } catch let error as DatabaseError {
            throw StateDatabase.error(error, path: databasePath, message: "cannot import the JSON records of the file-based store")
        } catch {
            throw StateDirectoryError(
                .recordWriteFailed, path: databasePath, message: "cannot import the JSON records of the file-based store: \(error)")
        }
        for file in imported { _ = unlink(file) }
        for directory in [appsPath, secretsPath] {
            writer.sweepStaleTemporaries(inDirectory: directory)
            _ = rmdir(directory)
        }
        syncDirectory(path)
        return corrupt
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

    // MARK: - Migration

    /// In the oldest file-based layout a received secret lived in `pending/<app>.json` only until every output
    /// held it. Such a record is an unfinished rollout: it becomes the current secret unless a
    /// newer one is already there. Each move is a rename within the state directory, then
    /// both directories are synced.
    private func migrateLegacyPending() throws(StateDirectoryError) {
        guard let entries = try? DirectoryListing.entries(atPath: legacyPendingPath) else { return }
        _ = mkdir(secretsPath, 0o700)  // imported into the database right after, then removed
        for name in entries.map(\.name) where name.hasSuffix(".json") && !name.hasPrefix(".") {
            let source = "\(legacyPendingPath)/\(name)"
            let destination = "\(secretsPath)/\(name)"
            guard case .record(let legacy) = findJSON(CurrentSecret.self, at: source) else { continue }
            if case .record(let existing) = findJSON(CurrentSecret.self, at: destination), existing.version >= legacy.version {
                _ = unlink(source)
                continue
            }
            if rename(source, destination) != 0 {
                throw StateDirectoryError(
                    .recordWriteFailed, path: destination, errno: Errno(rawValue: errno),
                    message: "cannot move the pending record of an older version into place")
            }
        }
        syncDirectory(secretsPath)
        syncDirectory(legacyPendingPath)
        // Temp files a killed writer left there go with the directory.
        writer.sweepStaleTemporaries(inDirectory: legacyPendingPath)
        _ = rmdir(legacyPendingPath)
    }

    /// A later file-based layout kept current secrets in `secrets/`, the default drop
    /// directory's name. A file there moves to `current/` only if it is a current-secret
    /// record of the app its name says, a regular file of ours with mode 0600: outputs in
    /// the drop directory are never touched.
    private func migrateLegacySecrets() throws(StateDirectoryError) {
        guard let entries = try? DirectoryListing.entries(atPath: legacySecretsPath) else { return }
        _ = mkdir(secretsPath, 0o700)  // imported into the database right after, then removed
        var moved = false
        for name in entries.map(\.name) where name.hasSuffix(".json") && !name.hasPrefix(".") {
            let source = "\(legacySecretsPath)/\(name)"
            var status = stat()
            guard lstat(source, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG, status.st_uid == ProcessUser.effectiveUID,
                status.st_mode & 0o777 == 0o600,
                case .record(let legacy) = findJSON(CurrentSecret.self, at: source),
                Self.fileName(for: legacy.appID) + ".json" == name
            else { continue }
            let destination = "\(secretsPath)/\(name)"
            if case .record(let existing) = findJSON(CurrentSecret.self, at: destination), existing.version >= legacy.version {
                _ = unlink(source)
                moved = true
                continue
            }
            if rename(source, destination) != 0 {
                throw StateDirectoryError(
                    .recordWriteFailed, path: destination, errno: Errno(rawValue: errno),
                    message: "cannot move the current-secret record of an older layout into place")
            }
            moved = true
        }
        if moved {
            syncDirectory(secretsPath)
            syncDirectory(legacySecretsPath)
        }
    }

    private func syncDirectory(_ directory: String) {
        guard let descriptor = try? FileDescriptor.open(FilePath(directory), .readOnly, options: [.directory, .closeOnExec])
        else { return }
        _ = fsync(descriptor.rawValue)
        try? descriptor.close()
    }
}

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import GRDB
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The state store: one SQLite database, `<state>/state.sqlite`, through GRDB.
///
/// Tables (one row per app, the columns are the records' coding keys):
///
///     app_state        AppState: version, intent, backoff, ... (no secret)
///     current_secret   CurrentSecret: the secret the outputs should hold
///     corrupt_record   rows that could not be decoded, moved aside with the reason
///
/// The database is opened in WAL mode (GRDB's `DatabasePool`) with `PRAGMA synchronous =
/// FULL`: a transaction is durable when its commit returns (one fsync of the WAL; SQLite's
/// "Write-Ahead Logging" page). The file is created 0600 before SQLite opens it; SQLite gives
/// the `-wal` and `-shm` files the database file's mode and owner. Readers never block the
/// writer, so `status` reads through a read-only connection while the daemon commits.
final class StateDatabase: Sendable {
    static let fileName = "state.sqlite"

    let path: String
    let pool: DatabasePool

    private init(path: String, pool: DatabasePool) {
        self.path = path
        self.pool = pool
    }

    /// Opens (creating if needed) the database for writing, and brings its schema up to date.
    ///
    /// - Throws: `StateDirectoryError.unavailable` when the file cannot be created or opened;
    ///   `.corruptDatabase` when it is not a database SQLite can read (the caller moves it aside).
    static func open(path: String) throws(StateDirectoryError) -> StateDatabase {
        // 0600 from the start: SQLite would create it 0644 & ~umask, and copies this mode to
        // the -wal and -shm files (os_unix.c, findCreateFileMode).
        let descriptor = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard descriptor >= 0 else {
            throw StateDirectoryError(
                .unavailable, path: path, errno: Errno(rawValue: errno), message: "cannot create the state database")
        }
        do {
            try checkOwnerAndMode(descriptor, path: path)
        } catch {
            _ = close(descriptor)
            throw error
        }
        // Closed before SQLite opens the file: closing any descriptor of a file drops every
        // fcntl lock this process holds on it, SQLite's included (a `defer` here once did).
        _ = close(descriptor)
        var configuration = Configuration()
        // WAL and FULL: every commit is durable before it returns (the ordering guarantees of
        // the engine rest on this). A CLI's write waits up to 10 s for the daemon's.
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        configuration.label = "secret-rotator.state"
        do {
            let pool = try DatabasePool(path: path, configuration: configuration)
            try migrator.migrate(pool)
            return StateDatabase(path: path, pool: pool)
        } catch let error as DatabaseError {
            throw Self.error(error, path: path, message: "cannot open the state database")
        } catch {
            throw StateDirectoryError(.unavailable, path: path, message: "cannot open the state database: \(error)")
        }
    }

    /// The database holds every current secret: it must be ours (the effective user, or the
    /// state directory's owner when root acts for the daemon) and 0600. A wider mode (an
    /// operator's copy, a restore) is narrowed, as the JSON store re-made its files 0600 on
    /// every save; a stranger's file is refused. The `-wal` and `-shm` files get the same.
    private static func checkOwnerAndMode(_ descriptor: Int32, path: String, narrow: Bool = true) throws(StateDirectoryError) {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw StateDirectoryError(.unavailable, path: path, errno: Errno(rawValue: errno), message: "cannot inspect the state database")
        }
        guard status.st_mode & S_IFMT == S_IFREG else {
            throw StateDirectoryError(.unavailable, path: path, message: "the state database is not a regular file")
        }
        let directory = FilePath(path).removingLastComponent().string
        var parent = stat()
        let daemonUser: uid_t? = stat(directory, &parent) == 0 ? parent.st_uid : nil
        // Root and a monitoring user read the daemon's database; only root may act for it.
        let rule = FileTrust.stateDatabase(effectiveUser: geteuid(), stateDirectoryOwner: daemonUser, actingForDaemon: geteuid() == 0 || !narrow)
        switch rule.problem(owner: status.st_uid, mode: UInt16(status.st_mode & 0o7777), place: .file) {
        case nil:
            break
        case .owner(let owner):
            throw StateDirectoryError(
                .unavailable, path: path,
                message: "the state database is owned by uid \(owner), not by this process (uid \(geteuid())) or the state directory's owner; it holds every secret, so it is not used")
        case .mode:
            if narrow {
                _ = fchmod(descriptor, 0o600)
                for suffix in ["-wal", "-shm"] { _ = chmod(path + suffix, 0o600) }
            }
        }
    }

    /// A read-only connection for `status`: nothing is created, migrated or written, and the
    /// daemon's commits go on meanwhile (WAL readers see the last committed transaction).
    /// Nil when there is no database yet.
    ///
    /// The daemon's rule for the file applies (`checkOwnerAndMode`, without narrowing the
    /// mode): a database the daemon would refuse (a link, a stranger's file) is refused here
    /// too, so `status` never vouches for records the daemon will not use.
    static func openReadOnly(path: String) throws(StateDirectoryError) -> DatabaseQueue? {
        var status = stat()
        if lstat(path, &status) != 0 && errno == ENOENT { return nil }
        let descriptor = Glibc.open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard descriptor >= 0 else {
            let failure = errno
            if failure == ELOOP {
                throw StateDirectoryError(.unavailable, path: path, message: "the state database is a symbolic link; the daemon refuses it")
            }
            throw StateDirectoryError(.unavailable, path: path, errno: Errno(rawValue: failure), message: "cannot open the state database")
        }
        // Closed before SQLite opens the file: closing any descriptor of it later would drop
        // SQLite's fcntl locks (POSIX advisory locks are per process and file).
        do throws(StateDirectoryError) {
            try checkOwnerAndMode(descriptor, path: path, narrow: false)
        } catch {
            close(descriptor)
            throw error
        }
        close(descriptor)
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(5)
        configuration.label = "secret-rotator.state.readonly"
        do {
            return try DatabaseQueue(path: path, configuration: configuration)
        } catch let error as DatabaseError {
            throw Self.error(error, path: path, message: "cannot open the state database read-only")
        } catch {
            throw StateDirectoryError(.unavailable, path: path, message: "cannot open the state database read-only: \(error)")
        }
    }

    /// The schema. A new migration is appended, never edited: databases in the field hold the
    /// identifiers of those already applied (GRDB's `DatabaseMigrator`).
    static let migrator: DatabaseMigrator = {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: app_state, current_secret, corrupt_record") { db in
            try db.create(table: AppState.databaseTableName) { t in
                t.primaryKey("appID", .text)
                t.column("version", .integer).notNull().defaults(to: 0)
                t.column("secretObtainedAt", .double)
                t.column("lastChecked", .double)
                t.column("consecutiveFailures", .integer).notNull().defaults(to: 0)
                t.column("nextAttempt", .double)
                t.column("lastError", .text)
                t.column("intent", .text)
                t.column("intentStartedAt", .double)
                t.column("unchangedReads", .integer).notNull().defaults(to: 0)
                t.column("rotationOwed", .boolean).notNull().defaults(to: false)
                t.column("hookDoneVersion", .integer).notNull().defaults(to: 0)
                t.column("secretFingerprint", .text)
                t.column("settleCheckDue", .double)
                t.column("lastVerified", .double)
                t.column("lastRepair", .text)
            }
            try db.create(table: CurrentSecret.databaseTableName) { t in
                t.primaryKey("appID", .text)
                t.column("version", .integer).notNull()
                t.column("obtainedAt", .double).notNull()
                t.column("secret", .text).notNull()
            }
            try db.create(table: "corrupt_record") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("tableName", .text).notNull()
                t.column("appID", .text).notNull()
                t.column("movedAt", .double).notNull()
                t.column("reason", .text).notNull()
                t.column("row", .text).notNull()
            }
        }
        migrator.registerMigration("v2: consumers") { db in
            try db.alter(table: AppState.databaseTableName) { t in
                t.add(column: "consumersDoneVersion", .integer).notNull().defaults(to: 0)
                // JSON: [ConsumerRecord].
                t.add(column: "consumers", .text)
            }
        }
        migrator.registerMigration("v3: last failure kind") { db in
            try db.alter(table: AppState.databaseTableName) { t in
                // AppState.FailureKind's raw value; NULL when nothing failed.
                t.add(column: "lastFailureKind", .text)
            }
        }
        migrator.registerMigration("v4: announced version") { db in
            try db.alter(table: AppState.databaseTableName) { t in
                t.add(column: "announcedVersion", .integer).notNull().defaults(to: 0)
            }
            // Records from before owe no notice: their versions were announced then, or never will be.
            try db.execute(sql: "UPDATE \(AppState.databaseTableName) SET announcedVersion = version")
        }
        return migrator
    }()

    // MARK: - Reading

    /// A row as found: missing, decoded, or not decodable (with the reason).
    enum Found<Record> {
        case missing
        case record(Record)
        case unreadable(String)
    }

    static func find<Record: FetchableRecord & TableRecord>(_ type: Record.Type, appID: String, in db: Database) throws -> Found<Record> {
        let statement = try db.cachedStatement(sql: "SELECT * FROM \(Record.databaseTableName) WHERE appID = ?")
        guard let row = try Row.fetchOne(statement, arguments: [appID]) else { return .missing }
        return decode(Record.self, row)
    }

    /// The records of `appIDs` in one pass over the table: for many apps (`status`, `rotate
    /// --all`) one statement instead of one query per app. Apps without a row are absent.
    static func findAll<Record: FetchableRecord & TableRecord>(
        _ type: Record.Type, appIDs: Set<String>, in db: Database
    ) throws -> [String: Found<Record>] {
        var found: [String: Found<Record>] = [:]
        let rows = try Row.fetchCursor(db, sql: "SELECT * FROM \(Record.databaseTableName)")
        while let row = try rows.next() {
            guard let appID: String = row["appID"], appIDs.contains(appID) else { continue }
            found[appID] = decode(Record.self, row)
        }
        return found
    }

    private static func decode<Record: FetchableRecord>(_ type: Record.Type, _ row: Row) -> Found<Record> {
        do {
            return .record(try Record(row: row))
        } catch {
            // Never the decoder's own text: GRDB's decoding errors quote the whole row, and a
            // current_secret row holds the secret.
            return .unreadable("not a valid record (a column is missing or holds a value of the wrong type)")
        }
    }

    /// Loads a record; an undecodable row is moved to `corrupt_record` and reported, so the
    /// app starts over instead of failing every step.
    func load<Record: FetchableRecord & TableRecord>(_ type: Record.Type, appID: String, now: Date)
        -> (record: Record?, corrupt: StateDirectory.CorruptRecord?)
    {
        do {
            // A read first: it never waits for the writer (WAL), which may be in a group commit.
            switch try pool.read({ db in try Self.find(type, appID: appID, in: db) }) {
            case .missing: return (nil, nil)
            case .record(let record): return (record, nil)
            case .unreadable: break
            }
            return try pool.write { db in
                switch try Self.find(type, appID: appID, in: db) {
                case .missing: return (nil, nil)
                case .record(let record): return (record, nil)
                case .unreadable(let reason):
                    let row = try Row.fetchOne(
                        db, sql: "SELECT * FROM \(Record.databaseTableName) WHERE appID = ?", arguments: [appID])
                    try db.execute(
                        sql: "INSERT INTO corrupt_record (tableName, appID, movedAt, reason, row) VALUES (?, ?, ?, ?, ?)",
                        arguments: [Record.databaseTableName, appID, now.timeIntervalSince1970, reason, row.map(Self.redacted) ?? ""])
                    let id = db.lastInsertedRowID
                    try db.execute(sql: "DELETE FROM \(Record.databaseTableName) WHERE appID = ?", arguments: [appID])
                    return (nil, StateDirectory.CorruptRecord(appID: appID, movedTo: "\(path) corrupt_record \(id)", reason: reason))
                }
            }
        } catch {
            // The database itself failed (I/O): report it as unreadable rather than crash;
            // the app starts over and the next save reports the failure with its errno.
            return (nil, StateDirectory.CorruptRecord(appID: appID, movedTo: path, reason: "unreadable: \(Self.describe(error))"))
        }
    }

    // MARK: - Writing

    /// Applies `changes` in one transaction: durable when this returns.
    func write(_ changes: StateChanges) throws(StateDirectoryError) {
        do {
            try pool.write { db in try changes.apply(db) }
        } catch let error as DatabaseError {
            throw Self.error(error, path: path, message: "cannot save the record")
        } catch {
            throw StateDirectoryError(.recordWriteFailed, path: path, message: "cannot save the record: \(error)")
        }
    }

    // MARK: - Errors

    /// A SQLite failure as a state-directory error, with the errno an operator knows from the
    /// file-based store where SQLite's result code implies one (SQLITE_FULL is ENOSPC...).
    ///
    /// SQLite reports a full disk as SQLITE_FULL only when a page write fails; when it cannot
    /// create or grow the `-wal` or `-shm` file it says SQLITE_IOERR or SQLITE_CANTOPEN. The
    /// file system's own state (statvfs of the directory) then names the cause.
    static func error(_ error: DatabaseError, path: String, message: String) -> StateDirectoryError {
        var errno: Errno?
        switch error.resultCode {
        case .SQLITE_FULL: errno = .noSpace
        case .SQLITE_READONLY: errno = .readOnlyFileSystem
        case .SQLITE_IOERR: errno = .ioError
        case .SQLITE_PERM, .SQLITE_AUTH: errno = .permissionDenied
        default: errno = nil
        }
        if [.SQLITE_FULL, .SQLITE_IOERR, .SQLITE_CANTOPEN, .SQLITE_READONLY].contains(error.resultCode) {
            let directory = FilePath(path).removingLastComponent().string
            switch VolumeCapacity.of(directory)?.problems().first {
            case .readOnly: errno = .readOnlyFileSystem
            case .noSpace, .noInodes: errno = .noSpace
            case nil: break
            }
        }
        let code: StateDirectoryError.Code
        switch error.resultCode {
        case .SQLITE_NOTADB, .SQLITE_CORRUPT: code = .corruptDatabase
        case .SQLITE_CANTOPEN: code = .unavailable
        default: code = .recordWriteFailed
        }
        return StateDirectoryError(
            code, path: path, errno: errno, message: "\(message) (SQLite: \(error.message ?? "\(error.resultCode)"))", cause: error)
    }

    /// An error for a log line or `status`: SQLite's own message (`sqlite3_errmsg`, which
    /// names no values), never a description that may quote a row.
    static func describe(_ error: any Error) -> String {
        if let error = error as? DatabaseError { return error.message ?? "SQLite error \(error.resultCode.rawValue)" }
        return "a record could not be decoded"
    }

    /// A row moved aside, as text: every column but `secret`, whose value is not kept.
    static func redacted(_ row: Row) -> String {
        row.columnNames.map { column in
            column == "secret" ? "\(column): <redacted>" : "\(column): \(row[column] as DatabaseValue)"
        }.joined(separator: ", ")
    }
}

/// State changes committed together: app records and current secrets (upserts). What one
/// step of one app changes is one `StateChanges`; the group commit puts those of concurrent
/// steps into one transaction.
public struct StateChanges: Sendable {
    public var states: [AppState] = []
    public var secrets: [CurrentSecret] = []

    public init(states: [AppState] = [], secrets: [CurrentSecret] = []) {
        self.states = states
        self.secrets = secrets
    }

    var isEmpty: Bool { states.isEmpty && secrets.isEmpty }

    func apply(_ db: Database) throws {
        // INSERT OR REPLACE: the whole row is the record, so a field set to nil is cleared.
        for state in states { try state.insert(db, onConflict: .replace) }
        for secret in secrets { try secret.insert(db, onConflict: .replace) }
    }
}

extension AppState.Intent: DatabaseValueConvertible {}
extension AppState.FailureKind: DatabaseValueConvertible {}

extension AppState: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "app_state"
    // Seconds since 2001-01-01 as REAL, Date's own representation: the exact instant comes
    // back (seconds since 1970 lose the lowest bits in the conversion). In sqlite3(1):
    // datetime(column + 978307200, 'unixepoch').
    public static func databaseDateEncodingStrategy(for column: String) -> DatabaseDateEncodingStrategy { .timeIntervalSinceReferenceDate }
    public static func databaseDateDecodingStrategy(for column: String) -> DatabaseDateDecodingStrategy { .timeIntervalSinceReferenceDate }
}

extension CurrentSecret: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "current_secret"
    // Seconds since 2001-01-01 as REAL, Date's own representation: the exact instant comes
    // back (seconds since 1970 lose the lowest bits in the conversion). In sqlite3(1):
    // datetime(column + 978307200, 'unixepoch').
    public static func databaseDateEncodingStrategy(for column: String) -> DatabaseDateEncodingStrategy { .timeIntervalSinceReferenceDate }
    public static func databaseDateDecodingStrategy(for column: String) -> DatabaseDateDecodingStrategy { .timeIntervalSinceReferenceDate }
}

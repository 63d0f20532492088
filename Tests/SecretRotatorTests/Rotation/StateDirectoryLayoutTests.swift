import Foundation
import Testing

@testable import SecretRotator

#if canImport(Glibc)
import Glibc
#endif

/// Engine v2 first kept current secrets in `<state>/secrets/`, which is also the default drop
/// directory (`/var/lib/secret-rotator` and `/var/lib/secret-rotator/secrets`): records sat
/// among the outputs. They now live in `current/`, and only real records move there.
@Suite(.tags(.addressSanitizer)) struct StateDirectoryLayoutTests {
    /// A record as the file-based store wrote it (JSON, dates in milliseconds since 1970).
    static func legacyJSON(_ record: CurrentSecret) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .millisecondsSince1970
        return try encoder.encode(record)
    }

    @Test func recordsMoveOutOfTheDropDirectoryAndOutputsStay() throws {
        let root = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let state = StateDirectory(path: root.path)
        let legacy = root.appendingPathComponent("secrets")
        try FileManager.default.createDirectory(at: legacy, withIntermediateDirectories: false)

        // A record as the first Engine v2 layout wrote it: 0600, into secrets/.
        let record = CurrentSecret(appID: "app-1", version: 4, obtainedAt: Date(timeIntervalSince1970: 1_700_000_000), secret: SecretValue("held-4"))
        try ConfigFixtures.write(String(decoding: try Self.legacyJSON(record), as: UTF8.self), to: legacy.appendingPathComponent("app-1.json"), mode: 0o600)

        // Outputs that must stay: a raw secret, a JSON output, a record under a wrong name.
        try ConfigFixtures.write("raw-output\n", to: legacy.appendingPathComponent("billing"), mode: 0o640)
        try ConfigFixtures.write(#"{"app_id":"app-2","secret":"x"}"#, to: legacy.appendingPathComponent("app-2.json"), mode: 0o600)
        let other = CurrentSecret(appID: "app-3", version: 1, obtainedAt: Date(), secret: SecretValue("s"))
        try ConfigFixtures.write(String(decoding: try Self.legacyJSON(other), as: UTF8.self), to: legacy.appendingPathComponent("other.json"), mode: 0o600)

        try state.prepare()
        #expect(state.loadSecret(appID: "app-1", now: Date()).secret == record)
        #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("current").path))
        let left = try FileManager.default.contentsOfDirectory(atPath: legacy.path).sorted()
        #expect(left == ["app-2.json", "billing", "other.json"])
    }

    /// The JSON records of the file-based store (`apps/`, `current/`, as the last
    /// release wrote them, `lastSuccess` key included) are imported into the database on
    /// first start, the files and their directories removed; a database row already there
    /// wins, and of two secrets the higher version. The database is 0600.
    @Test func jsonRecordsAreImportedIntoTheDatabase() throws {
        let root = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let state = StateDirectory(path: root.path)
        let apps = root.appendingPathComponent("apps")
        let current = root.appendingPathComponent("current")
        try FileManager.default.createDirectory(at: apps, withIntermediateDirectories: false)
        try FileManager.default.createDirectory(at: current, withIntermediateDirectories: false)
        // app-1: a finished rotation; app-2: a refresh in flight with its secret held (version 3 of 2).
        try ConfigFixtures.write(
            #"{"appID":"app-1","consecutiveFailures":0,"hookDoneVersion":5,"lastSuccess":1700000000000,"secretFingerprint":"fp1","version":5}"#,
            to: apps.appendingPathComponent("app-1.json"), mode: 0o600)
        try ConfigFixtures.write(
            #"{"appID":"app-2","intent":"refresh","intentStartedAt":1700000100500,"lastError":"timeout","nextAttempt":1700000200000,"rotationOwed":true,"version":2}"#,
            to: apps.appendingPathComponent("app-2.json"), mode: 0o600)
        let held1 = CurrentSecret(appID: "app-1", version: 5, obtainedAt: Date(timeIntervalSince1970: 1_700_000_000), secret: SecretValue("s-1-5"))
        let held2 = CurrentSecret(appID: "app-2", version: 3, obtainedAt: Date(timeIntervalSince1970: 1_700_000_150), secret: SecretValue("s-2-3"))
        try ConfigFixtures.write(String(decoding: try Self.legacyJSON(held1), as: UTF8.self), to: current.appendingPathComponent("app-1.json"), mode: 0o600)
        try ConfigFixtures.write(String(decoding: try Self.legacyJSON(held2), as: UTF8.self), to: current.appendingPathComponent("app-2.json"), mode: 0o600)
        // A temp file a killed writer left: swept with the directory.
        try ConfigFixtures.write("x", to: current.appendingPathComponent(TemporaryFileName.make(for: "app-1.json", random: 1)), mode: 0o600)

        try state.prepare()
        let one = try #require(state.loadState(appID: "app-1", now: Date()).state)
        #expect(one.version == 5 && one.hookDoneVersion == 5 && one.secretFingerprint == "fp1")
        #expect(one.secretObtainedAt == Date(timeIntervalSince1970: 1_700_000_000))
        let two = try #require(state.loadState(appID: "app-2", now: Date()).state)
        #expect(two.intent == .refresh && two.rotationOwed && two.lastError == "timeout" && two.version == 2)
        #expect(two.intentStartedAt == Date(timeIntervalSince1970: 1_700_000_100.5))
        #expect(state.loadSecret(appID: "app-1", now: Date()).secret == held1)
        #expect(state.loadSecret(appID: "app-2", now: Date()).secret == held2)
        #expect(!FileManager.default.fileExists(atPath: apps.path))
        #expect(!FileManager.default.fileExists(atPath: current.path))
        var status = stat()
        #expect(lstat(state.databasePath, &status) == 0 && status.st_mode & 0o777 == 0o600)

        // After a downgrade and an upgrade the JSON record is newer than the row: it wins.
        try FileManager.default.createDirectory(at: apps, withIntermediateDirectories: false)
        try ConfigFixtures.write(
            #"{"appID":"app-1","consecutiveFailures":0,"hookDoneVersion":6,"lastSuccess":1700000500000,"secretFingerprint":"fp6","version":6}"#,
            to: apps.appendingPathComponent("app-1.json"), mode: 0o600)
        try StateDirectory(path: root.path).prepare()
        #expect(StateDirectory(path: root.path).loadState(appID: "app-1", now: Date()).state?.version == 6)

        // A second import (a crash after the commit, before the files went) changes nothing,
        // and an older JSON secret does not replace a newer row.
        try FileManager.default.createDirectory(at: current, withIntermediateDirectories: false)
        let older = CurrentSecret(appID: "app-2", version: 2, obtainedAt: Date(timeIntervalSince1970: 1), secret: SecretValue("s-2-2"))
        try ConfigFixtures.write(String(decoding: try Self.legacyJSON(older), as: UTF8.self), to: current.appendingPathComponent("app-2.json"), mode: 0o600)
        try StateDirectory(path: root.path).prepare()
        #expect(StateDirectory(path: root.path).loadSecret(appID: "app-2", now: Date()).secret == held2)
    }

    /// The database holds every secret: a copy restored 0644 is narrowed to 0600, one owned
    /// by another user is refused (both were once used as found).
    @Test func databaseModeIsNarrowedAndAStrangersDatabaseRefused() throws {
        let root = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let state = StateDirectory(path: root.path)
        try state.prepare()
        try state.saveState(AppState(appID: "app-1"))
        #expect(chmod(state.databasePath, 0o644) == 0)
        try StateDirectory(path: root.path).prepare()
        var status = stat()
        #expect(lstat(state.databasePath, &status) == 0 && status.st_mode & 0o777 == 0o600)
        guard geteuid() == 0 else { return }
        #expect(chown(state.databasePath, 65534, 65534) == 0)
        #expect(throws: StateDirectoryError.self) { try StateDirectory(path: root.path).prepare() }
    }

    /// Every field survives the database, and a field set back to nil is cleared (the row is
    /// replaced whole, not merged).
    @Test func appStateRoundTripsThroughTheDatabase() throws {
        let root = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let state = StateDirectory(path: root.path)
        try state.prepare()
        var full = AppState(appID: "app-1")
        full.version = 7
        full.secretObtainedAt = Date(timeIntervalSince1970: 1_700_000_000.25)
        full.lastChecked = Date(timeIntervalSince1970: 1_700_000_001)
        full.consecutiveFailures = 2
        full.nextAttempt = Date(timeIntervalSince1970: 1_700_000_002)
        full.lastError = "HTTP 503"
        full.intent = .refresh
        full.intentStartedAt = Date(timeIntervalSince1970: 1_700_000_003)
        full.unchangedReads = 1
        full.rotationOwed = true
        full.hookDoneVersion = 6
        full.secretFingerprint = "fp"
        full.settleCheckDue = Date(timeIntervalSince1970: 1_700_000_004)
        full.lastVerified = Date(timeIntervalSince1970: 1_700_000_005)
        full.lastRepair = AppState.Repair(at: Date(timeIntervalSince1970: 1_700_000_006), causes: ["mode", "content"])
        try state.saveState(full)
        #expect(StateDirectory(path: root.path).loadState(appID: "app-1", now: Date()).state == full)
        var cleared = AppState(appID: "app-1")
        cleared.version = 8
        try state.saveState(cleared)
        #expect(StateDirectory(path: root.path).loadState(appID: "app-1", now: Date()).state == cleared)
    }

    @Test(arguments: [
        ("/s", "/s", true), ("/s/lock", "/s", true), ("/s/apps", "/s", true), ("/s/current/x", "/s", true),
        ("/s/secrets", "/s", false), ("/s/secrets/deep", "/s", false), ("/sx/apps", "/s", false), ("/", "/", true),
        ("/apps", "/", true), ("/srv", "/", false),
    ])
    func stateEntries(_ directory: String, _ state: String, _ own: Bool) {
        #expect(OutputPathConflicts.isStateEntry(directory, state: state) == own)
    }
}

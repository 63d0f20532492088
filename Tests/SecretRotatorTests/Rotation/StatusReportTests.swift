import Foundation
import GRDB
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

/// `secret-rotator status` reads the journal the engine writes: what it shows must match what
/// the engine would do next, it must not touch the state directory, and it never shows a secret.
@Suite(.tags(.addressSanitizer)) struct StatusReportTests {
    @Test func showsEngineStateAndWhatNeedsALook() async throws {
        try await withEngineFixture { harness, fixture in
            let config = fixture.config(hook: ["/bin/true"])
            let store = StateDirectory(path: config.defaults.stateDirectory)
            let now = fixture.clock.now()

            // Nothing has run: both apps are due now (first fetch), nothing to worry about.
            let fresh = StatusReport.read(config: config, stateDirectory: store, now: now)
            #expect(fresh.apps.map(\.version) == [0, 0])
            #expect(fresh.apps.map(\.nextDue) == [now, now])
            // No secret yet: a monitoring check must not say ok.
            #expect(fresh.apps.map(\.health.verdict) == [.overdue, .overdue])
            #expect(fresh.apps.allSatisfy { $0.health.findings == [.neverObtained] })

            let engine = try await fixture.startedEngine(hook: ["/bin/true"])
            let afterFetch = StatusReport.read(config: config, stateDirectory: store, now: now)
            let engineView = await engine.status()
            #expect(afterFetch.apps.map(\.nextDue) == engineView.apps.map(\.nextDue))
            #expect(afterFetch.apps.map(\.version) == [1, 1])
            #expect(afterFetch.apps.allSatisfy { $0.hookOwedVersion == nil && $0.pendingVersion == nil })

            // A failing app, a secret in flight and a hook still owed, as a crash leaves them.
            var failing = try #require(store.loadState(appID: GenAuthHarness.otherAppId, now: now).state)
            failing.consecutiveFailures = 3
            failing.lastError = "GenAuth refused the request (HTTP 403)"
            failing.nextAttempt = now.addingTimeInterval(90)
            try store.saveState(failing)
            var owing = try #require(store.loadState(appID: GenAuthHarness.appId, now: now).state)
            owing.version = 2
            owing.intent = .refresh
            try store.saveState(owing)
            let secretInFlight = "0123456789abcdef0123456789abcdef"
            try store.saveSecret(CurrentSecret(appID: GenAuthHarness.appId, version: 3, obtainedAt: now, secret: SecretValue(secretInFlight)))

            let report = StatusReport.read(config: config, stateDirectory: store, now: now)
            let app0 = report.apps[0]
            let app1 = report.apps[1]
            #expect(app0.pendingVersion == 3 && app0.hookOwedVersion == 2 && app0.unfinishedCall == "refresh")
            #expect(app0.nextDue == now, "a pending secret is finished at once")
            #expect(app1.nextDue == now.addingTimeInterval(90))
            // app0's refresh is unresolved: the secret on disk may already be dead.
            #expect(app1.needsAttention && app0.needsAttention)
            let text = report.render(now: now)
            #expect(text.contains("app1: 3 failed attempts; last error: GenAuth refused the request (HTTP 403)"))
            #expect(text.contains("app0: version 3 was received but is not yet on every output"))
            #expect(text.contains("app0: on_rotate hook for version 2 has not completed yet"))
            #expect(text.contains("in 1m30s"))
            let json = String(decoding: try JSONEncoder().encode(report), as: UTF8.self)
            for secret in [secretInFlight] + harness.state.everyIssuedSecret() {
                #expect(!text.contains(secret) && !json.contains(secret))
            }
        }
    }

    /// After a state directory that could not take a write (ENOSPC) during a rotation: the
    /// refresh was answered and its secret written to the output, but neither the secret nor
    /// the state could be saved, so the record still says version 1 with the refresh in
    /// flight. `status` names that (the record could not be saved), not "content differs" nor
    /// an unknown refresh outcome, and exits 1 (failing), not 3 (outputs): the output holds
    /// the live secret. Its words say what the daemon did or will do, never what `status` does.
    @Test func anUnsavedRecordIsNamedAndNotReportedAsDrift() async throws {
        try await withEngineFixture { harness, fixture in
            let config = fixture.config()
            let store = StateDirectory(path: config.defaults.stateDirectory)
            let engine = try await fixture.startedEngine(config: config)
            let app = GenAuthHarness.appId
            var saved = try #require(store.loadState(appID: app, now: fixture.clock.now()).state)
            let savedSecret = try #require(store.loadSecret(appID: app, now: fixture.clock.now()).secret)
            #expect(await engine.request(.refresh, forApp: "app0"))
            await engine.runDue()
            #expect(fixture.outputSecret(0) == harness.state.currentSecret(appId: app))
            // What the disk kept: the intent, committed before the refresh; nothing after it.
            saved.intent = .refresh
            saved.intentStartedAt = fixture.clock.now()
            saved.rotationOwed = true
            saved.lastRepair = AppState.Repair(at: fixture.clock.now(), causes: ["mode"])
            try store.saveState(saved)
            try store.saveSecret(savedSecret)

            let report = StatusReport.read(config: config, stateDirectory: store, now: fixture.clock.now(), checkOutputs: true)
            let text = report.render(now: fixture.clock.now())
            #expect(report.apps[0].health.findings.contains(.recordNotSaved(path: config.apps[0].outputs[0].path)), "\(report.apps[0].health.findings)")
            #expect(report.apps[0].health.verdict == .failing)
            #expect(text.contains("the state record could not be saved"), "\(text)")
            #expect(!text.contains("content differs"), "\(text)")
            #expect(!text.contains("outcome is unknown") && !text.contains("interrupted refresh"), "\(text)")
            #expect(text.contains("app0: the daemon last repaired its outputs just now (mode)"), "\(text)")
            #expect(!text.contains("outputs repaired"), "reads as if status repaired them: \(text)")

            // Without a refresh in flight, other content is drift as before.
            saved.intent = nil
            saved.intentStartedAt = nil
            try store.saveState(saved)
            let drift = StatusReport.read(config: config, stateDirectory: store, now: fixture.clock.now(), checkOutputs: true)
            #expect(drift.apps[0].health.verdict == .outputs)
            #expect(drift.render(now: fixture.clock.now()).contains("content differs"))
        }
    }

    /// Over many apps `inspect` reads each table once; what it finds must be what one lookup
    /// per app finds: records, missing rows and an undecodable row alike.
    @Test func manyAppsReadInOnePassAsOneByOne() throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        let store = StateDirectory(path: directory.path)
        try store.prepare()
        let ids = (0..<(StateDirectory.inspectionScanThreshold * 2)).map { "app-\($0)" }
        for (index, id) in ids.enumerated() {
            var state = AppState(appID: id)
            state.version = index
            try store.saveState(state)
            if index % 3 == 0 {
                try store.saveSecret(CurrentSecret(appID: id, version: index, obtainedAt: Date(timeIntervalSince1970: 0), secret: SecretValue("s-\(index)")))
            }
        }
        try StateTampering.execute(store, "UPDATE app_state SET lastRepair = '{ torn' WHERE appID = ?", ["app-7"])
        let asked = ids + ["never-saved"]
        let together = store.inspect(appIDs: asked)
        #expect(together.problems.isEmpty)
        #expect(together.apps.count == asked.count)
        for id in asked {
            let alone = store.inspect(appID: id)
            let found = try #require(together.apps[id])
            #expect(found.state == alone.state, "\(id)")
            #expect(found.secretVersion == alone.secretVersion, "\(id)")
            #expect(found.problems == alone.problems, "\(id)")
        }
        #expect(together.apps["app-7"]?.problems.first?.contains("not a valid record") == true)
        #expect(together.apps["never-saved"]?.state == nil)
    }

    /// The daemon moves a corrupt record aside; `status` only reports it and leaves it, through
    /// a read-only connection.
    @Test func reportsACorruptRecordWithoutMovingIt() async throws {
        try await withEngineFixture { harness, fixture in
            let config = fixture.config()
            let store = StateDirectory(path: config.defaults.stateDirectory)
            try store.prepare()
            try store.saveState(AppState(appID: GenAuthHarness.appId))
            try StateTampering.execute(store, "UPDATE app_state SET lastRepair = '{ torn' WHERE appID = ?", [GenAuthHarness.appId])
            let before = try StateTampering.fileStates(store)

            let report = StatusReport.read(config: config, stateDirectory: store, now: fixture.clock.now())
            let problem = try #require(report.apps[0].problems.first)
            #expect(problem.hasPrefix("state record of \(GenAuthHarness.appId) in \(store.databasePath): not a valid record"), "\(problem)")
            #expect(report.apps[0].needsAttention)
            #expect(report.render(now: fixture.clock.now()).contains("app0: state record of \(GenAuthHarness.appId)"))
            #expect(try StateTampering.count(store, "SELECT COUNT(*) FROM app_state WHERE lastRepair = '{ torn'") == 1)
            #expect(try StateTampering.count(store, "SELECT COUNT(*) FROM corrupt_record") == 0)
            #expect(try StateTampering.fileStates(store) == before, "status changed the state directory")
        }
    }

    /// `status` neither waits for a writer in the middle of a transaction (as the
    /// daemon is during its fsync) nor changes anything: it reads the last committed state.
    @Test func readsWithoutWaitingForAWriterOrChangingAnything() async throws {
        try await withEngineFixture { harness, fixture in
            let config = fixture.config()
            let store = StateDirectory(path: config.defaults.stateDirectory)
            try store.prepare()
            var committed = AppState(appID: GenAuthHarness.appId)
            committed.version = 4
            try store.saveState(committed)
            let before = try StateTampering.fileStates(store)

            // Another connection holds the write lock with an uncommitted change.
            let writer = try DatabaseQueue(path: store.databasePath)
            let inside = DispatchSemaphore(value: 0)
            let release = DispatchSemaphore(value: 0)
            let done = DispatchSemaphore(value: 0)
            DispatchQueue.global().async {
                try? writer.writeWithoutTransaction { db in
                    try db.execute(sql: "BEGIN IMMEDIATE")
                    try db.execute(sql: "UPDATE app_state SET version = 99")
                    inside.signal()
                    release.wait()
                    try db.execute(sql: "ROLLBACK")
                }
                done.signal()
            }
            inside.wait()
            let report = StatusReport.read(config: config, stateDirectory: store, now: fixture.clock.now())
            release.signal()
            done.wait()
            #expect(report.apps[0].version == 4)
            #expect(report.stateDirectoryProblems.isEmpty, "\(report.stateDirectoryProblems)")
            try writer.close()
            #expect(try StateTampering.fileStates(store) == before, "status changed the state directory")
        }
    }

    /// A current_secret row with a bad column made `status` (text and JSON)
    /// print GRDB's decoding error, which quotes the whole row, secret included. Nothing of
    /// the row is shown now; the daemon moves it aside without the secret and logs no value.
    @Test func aCorruptSecretRowNeverShowsTheSecret() async throws {
        try await withEngineFixture { harness, fixture in
            let config = fixture.config()
            let store = StateDirectory(path: config.defaults.stateDirectory)
            try store.prepare()
            let secret = "0123456789abcdef0123456789abcdef-leak-canary"
            try store.saveState(AppState(appID: GenAuthHarness.appId))
            try store.saveSecret(CurrentSecret(appID: GenAuthHarness.appId, version: 1, obtainedAt: Date(), secret: SecretValue(secret)))
            try StateTampering.execute(store, "UPDATE current_secret SET obtainedAt = 'not-a-date' WHERE appID = ?", [GenAuthHarness.appId])

            let report = StatusReport.read(config: config, stateDirectory: store, now: fixture.clock.now())
            let text = report.render(now: fixture.clock.now())
            let json = String(decoding: try JSONEncoder().encode(report), as: UTF8.self)
            #expect(text.contains("secret record of \(GenAuthHarness.appId)"), "\(text)")
            #expect(!text.contains(secret) && !json.contains(secret))

            let engine = try fixture.engine()
            try await engine.start()
            #expect(harness.capture.contains(event: "state_corrupt"))
            #expect(!harness.capture.renderedText.contains { $0.contains(secret) })
            #expect(try StateTampering.count(store, "SELECT COUNT(*) FROM corrupt_record WHERE row LIKE '%secret: <redacted>%'") == 1)
            #expect(try StateTampering.count(store, "SELECT COUNT(*) FROM corrupt_record WHERE row LIKE '%\(secret)%' OR reason LIKE '%\(secret)%'") == 0)
        }
    }

    /// A database that cannot be read at all does not show every app as "version 0, ok".
    @Test func anUnreadableDatabaseMarksEveryApp() async throws {
        try await withEngineFixture { harness, fixture in
            let config = fixture.config()
            let store = StateDirectory(path: config.defaults.stateDirectory)
            try FileManager.default.createDirectory(atPath: store.path, withIntermediateDirectories: true)
            try Data(repeating: 0x5A, count: 8192).write(to: URL(fileURLWithPath: store.databasePath))
            let report = StatusReport.read(config: config, stateDirectory: store, now: fixture.clock.now())
            #expect(report.apps.allSatisfy { $0.needsAttention && $0.problems.contains { $0.hasPrefix("state unknown") } })
            #expect(!report.stateDirectoryProblems.isEmpty)
        }
    }

    /// Before the daemon first ran with the database, `status` reads the JSON records of the
    /// file-based store, and reports a corrupt one without moving it or creating a database.
    @Test func readsTheJSONRecordsBeforeTheirImport() async throws {
        try await withEngineFixture { harness, fixture in
            let config = fixture.config()
            let store = StateDirectory(path: config.defaults.stateDirectory)
            try FileManager.default.createDirectory(atPath: store.path + "/apps", withIntermediateDirectories: true)
            let path = store.statePath(GenAuthHarness.appId)
            try Data("{ torn".utf8).write(to: URL(fileURLWithPath: path))

            let report = StatusReport.read(config: config, stateDirectory: store, now: fixture.clock.now())
            #expect(report.apps[0].problems == ["state record \(path): not a valid record"])
            #expect(try String(contentsOfFile: path, encoding: .utf8) == "{ torn")
            #expect(!FileManager.default.fileExists(atPath: store.databasePath))
        }
    }

    /// The monitoring verdict follows the clock (injected here): ok until the next step is more
    /// than the grace period late, then overdue; a failing app is 1; an output deleted,
    /// rewritten or re-moded is 3 even while the app is otherwise fine; 3 outranks 2 and 1.
    @Test func verdictFollowsTheClockTheOutputsAndTheFailures() async throws {
        try await withEngineFixture { harness, fixture in
            let config = fixture.config()
            let store = StateDirectory(path: config.defaults.stateDirectory)
            let engine = try await fixture.startedEngine()
            let now = fixture.clock.now()
            func verdicts(at time: Date, grace: Duration? = nil) -> [AppHealth.Verdict] {
                StatusReport.read(config: config, stateDirectory: store, now: time, grace: grace, checkOutputs: true)
                    .apps.map(\.health.verdict)
            }
            #expect(verdicts(at: now) == [.ok, .ok])
            // Interval 1 h; default grace max(6 min, 10 min) = 10 min.
            #expect(verdicts(at: now.addingTimeInterval(3_600 + 599)) == [.ok, .ok])
            #expect(verdicts(at: now.addingTimeInterval(3_600 + 601)) == [.overdue, .overdue])
            #expect(verdicts(at: now.addingTimeInterval(3_600 + 61), grace: .seconds(60)) == [.overdue, .overdue])
            #expect(AppHealth.defaultGrace(interval: .seconds(30 * 86_400)) == .seconds(3 * 86_400))

            let output = config.apps[0].outputs[0].path
            try FileManager.default.removeItem(atPath: output)
            let missing = StatusReport.read(config: config, stateDirectory: store, now: now, checkOutputs: true)
            #expect(missing.apps.map(\.health.verdict) == [.outputs, .ok])
            #expect(missing.verdict == .outputs)
            #expect(missing.render(now: now).contains("app0: output \(output) is not as configured: missing"))
            // Not checked unless asked (the engine's own view has its level-triggered check).
            #expect(StatusReport.read(config: config, stateDirectory: store, now: now).apps[0].health.verdict == .ok)

            await engine.checkOutputs()
            await engine.runDue()
            #expect(verdicts(at: now) == [.ok, .ok])
            chmod(output, 0o644)
            #expect(verdicts(at: now) == [.outputs, .ok], "a mode the config does not give is drift")
            chmod(output, 0o600)
            try Data("someone else's secret\n".utf8).write(to: URL(fileURLWithPath: output))
            chmod(output, 0o600)
            #expect(verdicts(at: now) == [.outputs, .ok], "other content is drift")

            // Judged against the daemon's account, not the caller's: a file owned by the
            // account the daemon writes as is fine; by anyone else it is drift.
            let me = WriterIdentity(userID: .init(rawValue: geteuid()), groupID: .init(rawValue: getegid()))
            let stranger = WriterIdentity(userID: .init(rawValue: 4_242), groupID: .init(rawValue: getegid()))
            await engine.checkOutputs()
            await engine.runDue()
            func owned(by identity: WriterIdentity) -> AppHealth.Verdict {
                StatusReport.read(config: config, stateDirectory: store, now: now, outputWriter: identity, checkOutputs: true)
                    .apps[0].health.verdict
            }
            #expect(owned(by: me) == .ok)
            #expect(owned(by: stranger) == .outputs)

            var failing = try #require(store.loadState(appID: GenAuthHarness.otherAppId, now: now).state)
            failing.consecutiveFailures = 2
            failing.lastError = "GenAuth refused the request (HTTP 403)"
            try store.saveState(failing)
            #expect(verdicts(at: now) == [.ok, .failing])
            try FileManager.default.removeItem(atPath: config.apps[1].outputs[0].path)
            #expect(verdicts(at: now) == [.ok, .outputs], "a missing output outranks failing")
            let text = StatusReport.read(config: config, stateDirectory: store, now: now, checkOutputs: true).render(now: now)
            for secret in harness.state.everyIssuedSecret() { #expect(!text.contains(secret)) }
        }
    }
}

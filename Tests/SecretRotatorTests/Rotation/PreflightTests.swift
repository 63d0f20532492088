import Foundation
import GenAuthMock
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

/// Before every refresh, each output is checked the way its write will be (Architecture, invariant 12: never
/// leave a service without a valid secret). GenAuth kills the old secret when it answers, so
/// an output that cannot take the new one must stop the refresh, not fail after it. Each
/// case: the condition arises after a first secret is on disk; the due refresh never reaches
/// the mock; the step fails with the output named and a backoff; the outputs keep the secret
/// GenAuth still accepts; once the condition is gone, the refresh happens.
@Suite(.tags(.addressSanitizer)) struct PreflightTests {
    private static let appID = GenAuthHarness.appId

    private func refreshes(_ harness: GenAuthHarness) -> Int {
        harness.state.requestLog().filter { $0.appId == Self.appID && $0.path.hasSuffix("refresh-application-secret") }.count
    }

    /// Runs the refresh due an hour after a first fetch with `breakIt` in force, checks that
    /// nothing was sent, then `repair`s and checks the refresh goes through.
    private func expectRefreshHeldBack(
        config: (EngineFixture) throws -> RotatorConfig = { $0.config() },
        breakIt: (EngineFixture) throws -> Void, repair: (EngineFixture) throws -> Void,
        reloadAfterRepair: ((EngineFixture) -> RotatorConfig)? = nil, fragment: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        try await withEngineFixture { harness, fixture in
            let engine = try await fixture.startedEngine(config: try config(fixture))
            fixture.expectInvariant(sourceLocation: sourceLocation)
            try breakIt(fixture)

            fixture.clock.advance(by: .seconds(3_600))
            await engine.runDue()
            #expect(refreshes(harness) == 0, "a refresh reached GenAuth", sourceLocation: sourceLocation)
            let state = try #require(await engine.state(of: Self.appID), sourceLocation: sourceLocation)
            #expect(state.consecutiveFailures == 1, sourceLocation: sourceLocation)
            #expect((state.nextAttempt ?? .distantPast) > fixture.clock.now(), "no backoff", sourceLocation: sourceLocation)
            #expect(state.lastError?.contains("not rotating: \(fixture.directory.path)/drop/app0") == true, "\(state.lastError ?? "-")", sourceLocation: sourceLocation)
            #expect(state.lastError?.contains(fragment) == true, "\(state.lastError ?? "-")", sourceLocation: sourceLocation)
            print("pre-flight refused: \(state.lastError ?? "-")")
            #expect(harness.capture.contains(event: "preflight_failed"), sourceLocation: sourceLocation)
            try repair(fixture)
            if let reloadAfterRepair { await engine.apply(reloadAfterRepair(fixture)) }
            fixture.expectInvariant(sourceLocation: sourceLocation)

            await fixture.runDaemonTime(engine, seconds: 120)
            #expect(refreshes(harness) == 1, sourceLocation: sourceLocation)
            fixture.expectInvariant(sourceLocation: sourceLocation)
        }
    }

    /// The reported case: a read-only bind mount over the output directory.
    @Test func readOnlyOutputDirectory() async throws {
        var mounted = false
        try await expectRefreshHeldBack(
            breakIt: { fixture in
                let drop = fixture.directory.appendingPathComponent("drop").path
                mounted =
                    (try? TestProcess.run("/usr/bin/mount", ["--bind", drop, drop]))?.status == 0
                    && (try? TestProcess.run("/usr/bin/mount", ["-o", "remount,bind,ro", drop, drop]))?.status == 0
                try #require(
                    mounted || ProcessInfo.processInfo.environment["SECRET_ROTATOR_REQUIRE_REAL_MOUNTS"] != "1",
                    "cannot bind-mount under CI")
                if !mounted {
                    // Not root: a read-only directory by mode has the same effect for us.
                    _ = chmod(drop, 0o500)
                }
            },
            repair: { fixture in
                let drop = fixture.directory.appendingPathComponent("drop").path
                if mounted { _ = try? TestProcess.run("/usr/bin/umount", [drop]) } else { _ = chmod(drop, 0o700) }
            },
            fragment: "cannot create the temporary file")
    }

    @Test func templateEditedIntoAnInvalidOne() async throws {
        try await expectRefreshHeldBack(
            config: { fixture in
                let template = fixture.directory.appendingPathComponent("app0.tmpl")
                try ConfigFixtures.write("{{secret}}\n", to: template, mode: 0o600)
                var config = fixture.config()
                config.apps[0].outputs[0].format = .template
                config.apps[0].outputs[0].templatePath = template.path
                return config
            },
            breakIt: { fixture in
                try ConfigFixtures.write("{{secret}\n", to: fixture.directory.appendingPathComponent("app0.tmpl"), mode: 0o600)
            },
            repair: { fixture in
                try ConfigFixtures.write("{{secret}}\n", to: fixture.directory.appendingPathComponent("app0.tmpl"), mode: 0o600)
            },
            fragment: "template")
    }

    @Test func templateMadeWritableByOthers() async throws {
        let path = { (fixture: EngineFixture) in fixture.directory.appendingPathComponent("app0.tmpl").path }
        try await expectRefreshHeldBack(
            config: { fixture in
                try ConfigFixtures.write("{{secret}}\n", to: URL(fileURLWithPath: path(fixture)), mode: 0o600)
                var config = fixture.config()
                config.apps[0].outputs[0].format = .template
                config.apps[0].outputs[0].templatePath = path(fixture)
                return config
            },
            breakIt: { fixture in _ = chmod(path(fixture), 0o666) },
            repair: { fixture in _ = chmod(path(fixture), 0o600) },
            fragment: "writable by group or others")
    }

    /// An owner named in the config that no longer resolves (deleted since the config loaded);
    /// the operator's reload with the numeric id ends it.
    @Test(.enabled(if: TestAccounts.isRoot, "needs root to chown"))
    func ownerThatNoLongerResolves() async throws {
        func config(_ fixture: EngineFixture, owner: AccountID) -> RotatorConfig {
            var config = fixture.config()
            config.apps[0].outputs[0].owner = owner
            return config
        }
        try await expectRefreshHeldBack(
            config: { config($0, owner: AccountID(name: "sr-no-such-user-4f1", id: 64_123)) },
            breakIt: { _ in }, repair: { _ in },
            reloadAfterRepair: { config($0, owner: AccountID(name: "64123", id: 64_123)) },
            fragment: "user \"sr-no-such-user-4f1\" no longer resolves")
    }

    /// A temp file can be made next to these, but the rename over them fails after the
    /// refresh: chattr +i, chattr +a, a bind mount over the file.
    @Test(arguments: ["+i", "+a", "bind"])
    func targetThatCannotBeRenamedOver(_ how: String) async throws {
        let path = { (fixture: EngineFixture) in fixture.directory.appendingPathComponent("drop/app0").path }
        let cover = { (fixture: EngineFixture) in fixture.directory.appendingPathComponent("cover").path }
        var applied = false
        try await expectRefreshHeldBack(
            breakIt: { fixture in
                if how == "bind" {
                    _ = FileManager.default.createFile(atPath: cover(fixture), contents: Data("x".utf8))
                    applied = (try? TestProcess.run("/usr/bin/mount", ["--bind", cover(fixture), path(fixture)]))?.status == 0
                } else {
                    applied = (try? TestProcess.run("/usr/bin/chattr", [how, path(fixture)]))?.status == 0
                }
                try #require(
                    applied || ProcessInfo.processInfo.environment["SECRET_ROTATOR_REQUIRE_REAL_MOUNTS"] != "1",
                    "cannot apply \(how) under CI")
                if !applied { _ = chmod(fixture.directory.appendingPathComponent("drop").path, 0o500) }
            },
            repair: { fixture in
                if !applied {
                    _ = chmod(fixture.directory.appendingPathComponent("drop").path, 0o700)
                } else if how == "bind" {
                    _ = try? TestProcess.run("/usr/bin/umount", [path(fixture)])
                } else {
                    _ = try? TestProcess.run("/usr/bin/chattr", [how.replacingOccurrences(of: "+", with: "-"), path(fixture)])
                }
            },
            fragment: "not rotating:")
    }

    /// The fallback from a refused read (403) to a refresh used to skip the pre-flight, which
    /// the scheduled refresh had (once: a refresh with an unknown outcome, then the
    /// reconciling read refused, then a refresh into a read-only directory). Now every way to
    /// a refresh passes through it.
    @Test func refreshAfterAForbiddenReconcileReadIsPreflighted() async throws {
        try await withEngineFixture { harness, fixture in
            let template = fixture.directory.appendingPathComponent("app0.tmpl")
            try ConfigFixtures.write("{{secret}}\n", to: template, mode: 0o600)
            var config = fixture.config()
            config.apps[0].outputs[0].format = .template
            config.apps[0].outputs[0].templatePath = template.path
            let engine = try await fixture.startedEngine(config: config)
            fixture.expectInvariant()

            harness.state.inject(.init(endpoint: .refreshApplicationSecret, appId: Self.appID, count: 1, fault: .httpStatus(500, jsonBody: true)))
            fixture.clock.advance(by: .seconds(3_600))
            await engine.runDue()
            #expect(refreshes(harness) == 1)
            #expect(await engine.state(of: Self.appID)?.intent == .refresh, "the 500 left an unknown outcome")

            #expect(chmod(template.path, 0o666) == 0)
            harness.state.inject(
                .init(endpoint: .getApplicationSecret, appId: Self.appID, count: 20, fault: .businessError(statusCode: 403, apiCode: nil, message: "forbidden")))
            await fixture.runDaemonTime(engine, seconds: 120)
            #expect(refreshes(harness) == 1, "the fallback refresh skipped the pre-flight")
            let state = try #require(await engine.state(of: Self.appID))
            #expect(state.lastError?.contains("not rotating") == true, "\(state.lastError ?? "-")")
        }
    }

    @Test func outputReplacedByADirectory() async throws {
        let path = { (fixture: EngineFixture) in fixture.directory.appendingPathComponent("drop/app0").path }
        var saved: Data?
        try await expectRefreshHeldBack(
            breakIt: { fixture in
                saved = FileManager.default.contents(atPath: path(fixture))
                try FileManager.default.removeItem(atPath: path(fixture))
                try FileManager.default.createDirectory(atPath: path(fixture), withIntermediateDirectories: false)
            },
            repair: { fixture in
                try FileManager.default.removeItem(atPath: path(fixture))
                _ = FileManager.default.createFile(atPath: path(fixture), contents: saved, attributes: [.posixPermissions: 0o600])
            },
            fragment: "refusing to replace a directory")
    }
}

/// A hook printing the secret behind 1,984 other characters showed its
/// second half, because the log keeps the last 2,000 characters and redaction ran after the cut.
@Suite(.tags(.addressSanitizer)) struct HookOutputRedactionTests {
    @Test func aCutThroughTheSecretLeavesNoPieceOfIt() {
        let secret = "597980b3aa9d081bb72351d739fab442"
        for cut in 1..<(secret.count - 3) {
            let text = String(secret.dropFirst(cut)) + String(repeating: "x", count: 10)
            let cleaned = RotationEngine.droppingSecretTail(text, of: secret)
            #expect(cleaned.hasPrefix("<redacted>"), "cut at \(cut): \(cleaned)")
            #expect(!cleaned.contains(String(secret.suffix(4))), "cut at \(cut): \(cleaned)")
        }
        #expect(RotationEngine.droppingSecretTail("xxxx", of: secret) == "xxxx")
    }
}

import Foundation
import GenAuthMock
import SecretRotatorTestKit
import Testing

@testable import SecretRotator

/// An engine and a GenAuth client reporting to one `MetricsTextfile`, against the in-process mock.
struct MetricsFixture {
    let fixture: EngineFixture
    let textfile: MetricsTextfile
    let client: GenAuthClient
    let engine: RotationEngine
    let path: String

    init(_ harness: GenAuthHarness, _ fixture: EngineFixture, textfileDirectory: String = "metrics", hook: [String]? = nil) throws {
        self.fixture = fixture
        let directory = fixture.directory.appendingPathComponent(textfileDirectory)
        path = directory.appendingPathComponent("secret_rotator.prom").path
        let clock = fixture.clock
        textfile = MetricsTextfile(
            path: path, now: clock.now, logger: harness.capture.logger(label: "secret-rotator.metrics"))
        client = try GenAuthClient(
            configuration: harness.client.configuration, logger: harness.capture.logger(), metrics: textfile.metrics)
        engine = fixture.engine(config: fixture.config(hook: hook), api: client, metrics: textfile.metrics)
    }

    /// The labels of one app's series in the fixture (`app0`, `app1`).
    static func app(_ index: Int, _ extra: [String: String] = [:]) -> [String: String] {
        let ids = [GenAuthHarness.appId, GenAuthHarness.otherAppId]
        return ["app": "app\(index)", "app_id": ids[index]].merging(extra) { $1 }
    }

    /// Runs `body` with a fixture whose client is shut down afterwards, also when `body` throws.
    static func with(
        _ harness: GenAuthHarness, _ fixture: EngineFixture, textfileDirectory: String = "metrics", hook: [String]? = nil,
        _ body: (MetricsFixture) async throws -> Void
    ) async throws {
        let metrics = try MetricsFixture(harness, fixture, textfileDirectory: textfileDirectory, hook: hook)
        do {
            try await body(metrics)
        } catch {
            try? await metrics.client.shutdown()
            throw error
        }
        try await metrics.client.shutdown()
    }

    func createDirectory() throws {
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    }
}

@Suite(.tags(.addressSanitizer)) struct MetricsTextfileTests {
    typealias Name = RotatorMetrics.Name

    /// A refresh whose outcome is unknown showed nowhere in the metrics while `status` said
    /// FAILING: a gauge says so until the daemon reconciles it.
    @Test func anUnknownRefreshOutcomeIsAGauge() throws {
        let directory = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("m.prom").path
        let textfile = MetricsTextfile(path: path)
        let app = AppConfig(
            id: "64d0c0ffee0000000000b111", name: "billing", action: .rotate, interval: .seconds(3_600), jitter: .zero,
            firstStart: .fetch, onRotate: nil, hookTimeout: .seconds(10), outputs: [])
        textfile.metrics.track(apps: [app])
        var state = AppState(appID: app.id)
        state.version = 3
        state.intent = .refresh
        textfile.metrics.appStateChanged(app, state: state)
        try Data(textfile.render()).write(to: URL(fileURLWithPath: path))
        let labels = ["app": "billing", "app_id": app.id]
        #expect(try ParsedMetrics.parse(file: path).value(Name.refreshOutcomeUnknown, labels) == 1)
        state.intent = nil
        textfile.metrics.appStateChanged(app, state: state)
        try Data(textfile.render()).write(to: URL(fileURLWithPath: path))
        #expect(try ParsedMetrics.parse(file: path).value(Name.refreshOutcomeUnknown, labels) == 0)
    }

    /// Without a textfile nothing is recorded, so a daemon without `[metrics]` keeps no series
    /// per app; a path given later (a reload) starts recording, and the next publishing of the
    /// app's state fills its gauges.
    @Test func nothingIsRecordedUntilATextfileIsSet() throws {
        let directory = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("m.prom").path
        let textfile = MetricsTextfile(path: nil)
        let app = AppConfig(
            id: "64d0c0ffee0000000000b111", name: "billing", action: .rotate, interval: .seconds(3_600), jitter: .zero,
            firstStart: .fetch, onRotate: nil, hookTimeout: .seconds(10), outputs: [])
        var state = AppState(appID: app.id)
        state.consecutiveFailures = 2
        textfile.metrics.track(apps: [app])
        textfile.metrics.appStateChanged(app, state: state)
        textfile.metrics.rotationFinished(app, succeeded: false)
        #expect(!textfile.metrics.isEnabled)
        #expect(!String(decoding: textfile.render(), as: UTF8.self).contains(app.id))

        textfile.setPath(path)
        #expect(textfile.metrics.isEnabled)
        textfile.metrics.track(apps: [app])
        textfile.metrics.appStateChanged(app, state: state)
        try Data(textfile.render()).write(to: URL(fileURLWithPath: path))
        let labels = ["app": "billing", "app_id": app.id]
        let parsed = try ParsedMetrics.parse(file: path)
        #expect(parsed.value(Name.consecutiveFailures, labels) == 2)
        #expect(parsed.value(Name.rotations, labels.merging(["result": "failure"]) { $1 }) == 0, "counted from the reload")
    }

    /// After a rotation, a failure and a repair the file is valid text
    /// format for a real parser, and its values say what happened; no secret is in it.
    @Test func rotationFailureAndRepairShowInTheTextfile() async throws {
        try await withEngineFixture { harness, fixture in
            try await MetricsFixture.with(harness, fixture, hook: ["/bin/true"]) { metrics in
                try metrics.createDirectory()
                let writer = Task { await metrics.textfile.run() }
                defer { writer.cancel() }
                let engine = metrics.engine
                try await engine.start()
                await engine.runDue()  // first start: fetch, no rotation

                // 1. A rotation of both apps.
                fixture.clock.advance(by: .seconds(3_600))
                let rotatedAt = fixture.clock.now()
                await engine.runDue()
                fixture.expectInvariant()
                let afterRotation = try await ParsedMetrics.firstParse(of: metrics.path) { parsed in
                    // Both apps complete: a write between the two apps' updates is valid too.
                    (0..<2).allSatisfy { index in
                        parsed.value(Name.rotations, MetricsFixture.app(index, ["result": "success"])) == 1
                            && parsed.value(Name.hookRuns, MetricsFixture.app(index, ["result": "success"])) == 2
                            && parsed.value(Name.lastSuccess, MetricsFixture.app(index)) == rotatedAt.timeIntervalSince1970
                    } && parsed.value(Name.exposureWindow + "_count") == 2
                        && parsed.value(Name.apiRequestDuration + "_count", ["endpoint": "refresh-application-secret"]) == 2
                }
                for index in 0..<2 {
                    let app = MetricsFixture.app(index)
                    #expect(afterRotation.value(Name.rotations, app.merging(["result": "success"]) { $1 }) == 1)
                    #expect(afterRotation.value(Name.rotations, app.merging(["result": "failure"]) { $1 }) == 0)
                    // The first fetch and the rotation each ran the hook.
                    #expect(afterRotation.value(Name.hookRuns, app.merging(["result": "success"]) { $1 }) == 2)
                    #expect(afterRotation.value(Name.consecutiveFailures, app) == 0)
                    #expect(afterRotation.value(Name.refreshOutcomeUnknown, app) == 0)
                    #expect(afterRotation.value(Name.lastSuccess, app) == rotatedAt.timeIntervalSince1970)
                    #expect(afterRotation.value(Name.nextRotation, app) == rotatedAt.timeIntervalSince1970 + 3_600)
                    #expect(afterRotation.value(Name.secretAge, app) == 0)
                }
                let refresh = ["endpoint": "refresh-application-secret"]
                #expect(afterRotation.value(Name.apiRequests, refresh.merging(["outcome": "ok"]) { $1 }) == 2)
                #expect(afterRotation.value(Name.apiRequests, ["endpoint": "get-application-secret", "outcome": "ok"]) == 2)
                #expect((afterRotation.value(Name.apiRequests, ["endpoint": "get-management-token", "outcome": "ok"]) ?? 0) >= 1)
                #expect(afterRotation.value(Name.apiRequestDuration + "_count", refresh) == 2)
                #expect(afterRotation.value(Name.apiRequestDuration + "_bucket", refresh.merging(["le": "+Inf"]) { $1 }) == 2)
                #expect(afterRotation.value(Name.exposureWindow + "_count") == 2)
                #expect(afterRotation.value(Name.exposureWindow + "_bucket", ["le": "+Inf"]) == 2)
                #expect(afterRotation.value(Name.buildInfo, ["version": SecretRotatorVersion.current]) == 1)
                #expect(afterRotation.type(of: Name.rotations) == "counter")
                #expect(afterRotation.type(of: Name.secretAge) == "gauge")
                #expect(afterRotation.type(of: Name.apiRequestDuration + "_count") == "histogram")
                #expect(afterRotation.type(of: Name.exposureWindow + "_sum") == "histogram")

                // 2. app0's next rotation fails (HTTP 503); app1's succeeds.
                fixture.clock.advance(by: .seconds(3_600))
                harness.state.inject(
                    MockFaultRule(endpoint: .refreshApplicationSecret, appId: GenAuthHarness.appId, count: 1, fault: .httpStatus(503, jsonBody: true)))
                await engine.runDue()
                let afterFailure = try await ParsedMetrics.firstParse(of: metrics.path) {
                    $0.value(Name.consecutiveFailures, MetricsFixture.app(0)) == 1
                        && $0.value(Name.rotations, MetricsFixture.app(1, ["result": "success"])) == 2
                        && $0.value(Name.rotations, MetricsFixture.app(0, ["result": "failure"])) == 1
                        && $0.value(Name.exposureWindow + "_count") == 3
                        && $0.value(Name.apiRequestDuration + "_count", ["endpoint": "refresh-application-secret"]) == 4
                }
                #expect(afterFailure.value(Name.rotations, MetricsFixture.app(0, ["result": "failure"])) == 1)
                #expect(afterFailure.value(Name.rotations, MetricsFixture.app(0, ["result": "success"])) == 1)
                #expect(afterFailure.value(Name.consecutiveFailures, MetricsFixture.app(1)) == 0)
                #expect(afterFailure.value(Name.apiRequests, refresh.merging(["outcome": "http_error"]) { $1 }) == 1)
                #expect(afterFailure.value(Name.apiRequests, refresh.merging(["outcome": "ok"]) { $1 }) == 3)
                #expect(afterFailure.value(Name.apiRequestDuration + "_count", refresh) == 4)
                #expect(afterFailure.value(Name.exposureWindow + "_count") == 3)
                // app0's secret is an hour old now: its age says so (refreshed at each write).
                #expect(afterFailure.value(Name.secretAge, MetricsFixture.app(0)) == 3_600)

                // 3. app1's output drifts (someone overwrote it) and is repaired without GenAuth.
                try Data("edited by hand\n".utf8).write(to: fixture.directory.appendingPathComponent("drop/app1"))
                await engine.checkOutputs(appIDs: [GenAuthHarness.otherAppId])
                await engine.runDue()
                let afterRepair = try await ParsedMetrics.firstParse(of: metrics.path) {
                    $0.value(Name.outputRepairs, MetricsFixture.app(1, ["cause": "content"])) == 1
                }
                #expect(fixture.outputSecret(1) == harness.state.currentSecret(appId: GenAuthHarness.otherAppId))
                // Repairs are no rotations.
                #expect(afterRepair.value(Name.rotations, MetricsFixture.app(1, ["result": "success"])) == 2)

                writer.cancel()
                await writer.value  // ends with a last write

                // Invariant 5: no secret, no fingerprint of one and no output path in the file.
                let text = try String(contentsOfFile: metrics.path, encoding: .utf8)
                let secrets = harness.state.everyIssuedSecret()
                #expect(secrets.count >= 3)
                for secret in secrets {
                    #expect(!text.contains(secret), "a secret is in the metrics textfile")
                    #expect(!text.contains(SecretFingerprint.of(SecretValue(secret))), "a fingerprint is in the metrics textfile")
                }
                #expect(!text.contains(fixture.directory.path))
                #expect(!text.contains("sk-"), "the access key secret is in the metrics textfile")
                // The file is readable by node_exporter's user.
                let attributes = try FileManager.default.attributesOfItem(atPath: metrics.path)
                #expect((attributes[.posixPermissions] as? Int) == 0o644)
            }
        }
    }

    /// A textfile directory that does not exist: logged once, never a crash, rotation goes on;
    /// once the directory appears the file is written and the recovery logged.
    @Test func missingDirectoryIsLoggedOnceAndRotationGoesOn() async throws {
        try await withEngineFixture { harness, fixture in
            try await MetricsFixture.with(harness, fixture, textfileDirectory: "not-yet") { metrics in
                let engine = metrics.engine
                try await engine.start()
                await engine.runDue()
                fixture.clock.advance(by: .seconds(3_600))
                await engine.runDue()
                #expect(await engine.state(of: GenAuthHarness.appId)?.version == 2)
                fixture.expectInvariant()

                #expect(await metrics.textfile.writeNow() == false)
                #expect(await metrics.textfile.writeNow() == false)
                let failures = harness.capture.events("metrics_write_failed").filter { $0.level == .error }
                #expect(failures.count == 1, "\(failures)")
                #expect(failures.first?.metadata["errno"] == "ENOENT")
                #expect(!FileManager.default.fileExists(atPath: metrics.path))

                try metrics.createDirectory()
                #expect(await metrics.textfile.writeNow())
                #expect(harness.capture.contains(event: "metrics_write_recovered"))
                let parsed = try ParsedMetrics.parse(file: metrics.path)
                #expect(parsed.value(Name.rotations, MetricsFixture.app(0, ["result": "success"])) == 1)
            }
        }
    }

    /// A reload drops the series of a removed app and renames those of a renamed one; apps
    /// added get their counters at 0.
    @Test func reloadDropsSeriesOfRemovedApps() async throws {
        try await withEngineFixture { harness, fixture in
            try await MetricsFixture.with(harness, fixture) { metrics in
                try metrics.createDirectory()
                let engine = metrics.engine
                try await engine.start()
                await engine.runDue()
                #expect(await metrics.textfile.writeNow())
                let before = try ParsedMetrics.parse(file: metrics.path)
                #expect(before.value(Name.lastSuccess, MetricsFixture.app(1)) != nil)

                var config = fixture.config()
                let removed = config.apps.removeLast()
                config.apps[0].name = "billing"
                await engine.apply(config)
                // A step of the removed app that was still running reports late: no new series.
                metrics.textfile.metrics.rotationFinished(removed, succeeded: true)
                #expect(await metrics.textfile.writeNow())
                let after = try ParsedMetrics.parse(file: metrics.path)
                #expect(!after.samples.contains { $0.labels["app_id"] == GenAuthHarness.otherAppId })
                #expect(!after.samples.contains { $0.labels["app"] == "app0" })
                let renamed = ["app": "billing", "app_id": GenAuthHarness.appId]
                #expect(after.value(Name.lastSuccess, renamed) == before.value(Name.lastSuccess, MetricsFixture.app(0)))
                #expect(after.value(Name.rotations, renamed.merging(["result": "failure"]) { $1 }) == 0)
            }
        }
    }

    /// The outcome label is a fixed set derived from the client's own error reasons.
    @Test func apiOutcomeFollowsTheErrorReason() {
        func outcome(_ reason: GenAuthError.Reason) -> APIRequestOutcome {
            APIRequestOutcome(GenAuthError(classification: .transient, reason: reason, operation: "get-application-secret"))
        }
        #expect(outcome(.httpStatus) == .httpError)
        #expect(outcome(.apiError) == .apiError)
        #expect(outcome(.timeout) == .timeout)
        #expect(outcome(.notConnected) == .connectionError)
        #expect(outcome(.connectionLost) == .connectionError)
        #expect(outcome(.malformedResponse) == .badAnswer)
        #expect(Set(APIRequestOutcome.allCases.map(\.rawValue)).count == APIRequestOutcome.allCases.count)
    }

    /// `disabled` (the engine's default) records nothing and never calls a change handler.
    @Test func disabledMetricsRecordNothing() {
        let metrics = RotatorMetrics.disabled
        #expect(!metrics.isEnabled)
        metrics.apiRequest(endpoint: "get-application", outcome: .ok, duration: .milliseconds(3))
        metrics.exposureWindow(.milliseconds(1))
    }
}

/// The registry is split into shards of `ShardedPrometheusRegistry.appsPerShard` apps (each new
/// series in swift-prometheus copies its family); the file must still hold every family once.
@Suite struct ShardedRegistryTests {
    @Test func manyAppsRenderAsOneFamilyEach() throws {
        let directory = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("m.prom").path
        let textfile = MetricsTextfile(path: path)
        let count = ShardedPrometheusRegistry.appsPerShard * 3 + 5
        let apps = (0..<count).map { index in
            AppConfig(
                id: "app-\(index)", name: "app\(index)", action: .rotate, interval: .seconds(3_600), jitter: .zero,
                firstStart: .fetch, onRotate: index.isMultiple(of: 2) ? ["/bin/true"] : nil, hookTimeout: .seconds(10), outputs: [])
        }
        textfile.metrics.track(apps: apps)
        for (index, app) in apps.enumerated() {
            var state = AppState(appID: app.id)
            state.version = index + 1
            state.secretObtainedAt = Date(timeIntervalSince1970: 1_800_000_000 + Double(index))
            textfile.metrics.appStateChanged(app, state: state)
        }
        textfile.metrics.apiRequest(endpoint: "refresh-application-secret", outcome: .ok, duration: .milliseconds(3))
        let text = String(decoding: textfile.render(), as: UTF8.self)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        let types = text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }
        #expect(Set(types).count == types.count, "a family's TYPE line appears once")
        #expect(types.count >= 8)
        // Each family's lines are contiguous: once another family starts, it never comes back.
        var seen: Set<Substring> = []
        var current: Substring = ""
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let name = line.prefix { $0 != "{" && $0 != " " }
            // A histogram's samples (_bucket, _sum, _count) belong to its family.
            var family = name
            for suffix in ["_bucket", "_sum", "_count"] where family.hasSuffix(suffix) && !family.hasSuffix("_total") {
                family = family.dropLast(suffix.count)
            }
            if family != current {
                #expect(!seen.contains(family), "\(family) is split")
                seen.insert(current)
                current = family
            }
        }
        let parsed = try ParsedMetrics.parse(file: path)
        for (index, app) in apps.enumerated() {
            #expect(
                parsed.value(RotatorMetrics.Name.lastSuccess, ["app": app.name, "app_id": app.id])
                    == 1_800_000_000 + Double(index))
        }
        #expect(parsed.value(RotatorMetrics.Name.apiRequests, ["endpoint": "refresh-application-secret", "outcome": "ok"]) == 1)
    }
}

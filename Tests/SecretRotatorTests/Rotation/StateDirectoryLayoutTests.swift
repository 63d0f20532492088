import Foundation
import Testing

@testable import SecretRotator

#if canImport(Glibc)
import Glibc
#endif

/// Engine v2 first kept current secrets in `<state>/secrets/`, which is also the default drop
/// directory (`/var/lib/secret-rotator` and `/var/lib/secret-rotator/secrets`): records sat
/// among the outputs. They now live in `current/`, and only real records move there.
@Suite struct StateDirectoryLayoutTests {
    @Test func recordsMoveOutOfTheDropDirectoryAndOutputsStay() throws {
        let root = try ConfigFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let state = StateDirectory(path: root.path)
        let legacy = root.appendingPathComponent("secrets")
        try FileManager.default.createDirectory(at: legacy, withIntermediateDirectories: false)

        // A record as the first Engine v2 layout wrote it: through the same writer, into secrets/.
        let staging = StateDirectory(path: root.appendingPathComponent("staging").path)
        try staging.prepare()
        let record = CurrentSecret(appID: "app-1", version: 4, obtainedAt: Date(timeIntervalSince1970: 1_700_000_000), secret: SecretValue("held-4"))
        try staging.saveSecret(record)
        #expect(rename(staging.secretPath("app-1"), legacy.appendingPathComponent("app-1.json").path) == 0)

        // Outputs that must stay: a raw secret, a JSON output, a record under a wrong name.
        try ConfigFixtures.write("raw-output\n", to: legacy.appendingPathComponent("billing"), mode: 0o640)
        try ConfigFixtures.write(#"{"app_id":"app-2","secret":"x"}"#, to: legacy.appendingPathComponent("app-2.json"), mode: 0o600)
        try staging.saveSecret(CurrentSecret(appID: "app-3", version: 1, obtainedAt: Date(), secret: SecretValue("s")))
        #expect(rename(staging.secretPath("app-3"), legacy.appendingPathComponent("other.json").path) == 0)

        try state.prepare()
        #expect(state.loadSecret(appID: "app-1", now: Date()).secret?.version == 4)
        #expect(FileManager.default.fileExists(atPath: root.appendingPathComponent("current/app-1.json").path))
        let left = try FileManager.default.contentsOfDirectory(atPath: legacy.path).sorted()
        #expect(left == ["app-2.json", "billing", "other.json"])
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

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The mock's initial state, readable from (and writable to) a small JSON file:
///
/// ```json
/// {"userPoolId": "mock-userpool",
///  "accessKeys": [{"accessKeyId": "mock-access-key-id", "accessKeySecret": "mock-access-key-secret"}],
///  "apps": [{"appId": "mock-app-1", "appName": "billing", "secret": "0123...", "rotationCount": 0}],
///  "tokenExpiresIn": 7200}
/// ```
/// `secret` may be omitted (a random one is made); `userPoolId` of an access key defaults
/// to the pool's.
public struct MockSeed: Sendable, Codable, Equatable {
    public struct AccessKey: Sendable, Codable, Equatable {
        public var accessKeyId: String
        public var accessKeySecret: String
        public var userPoolId: String?

        public init(accessKeyId: String, accessKeySecret: String, userPoolId: String? = nil) {
            self.accessKeyId = accessKeyId
            self.accessKeySecret = accessKeySecret
            self.userPoolId = userPoolId
        }
    }

    public struct App: Sendable, Codable, Equatable {
        public var appId: String
        public var appName: String?
        public var secret: String?
        public var rotationCount: Int?

        public init(appId: String, appName: String? = nil, secret: String? = nil, rotationCount: Int? = nil) {
            self.appId = appId
            self.appName = appName
            self.secret = secret
            self.rotationCount = rotationCount
        }
    }

    public var userPoolId: String
    public var accessKeys: [AccessKey]
    public var apps: [App]
    /// Seconds a management token lives (`expires_in`).
    public var tokenExpiresIn: Int?

    public init(userPoolId: String, accessKeys: [AccessKey], apps: [App], tokenExpiresIn: Int? = nil) {
        self.userPoolId = userPoolId
        self.accessKeys = accessKeys
        self.apps = apps
        self.tokenExpiresIn = tokenExpiresIn
    }

    /// What `genauth-mock` serves when no seed file is given. These credentials are
    /// published test values, not secrets.
    public static let demo = MockSeed(
        userPoolId: "62a1b2c3d4e5f60718293a4b",
        accessKeys: [.init(accessKeyId: "mock-access-key-id", accessKeySecret: "mock-access-key-secret")],
        apps: [
            .init(appId: "62a1b2c3d4e5f60718293a01", appName: "demo-app-1"),
            .init(appId: "62a1b2c3d4e5f60718293a02", appName: "demo-app-2"),
        ],
        tokenExpiresIn: 7200
    )

    public static func load(path: String) throws -> MockSeed {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try JSONDecoder().decode(MockSeed.self, from: data)
    }

    public func save(path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        // Write-then-rename so a crash mid-save never leaves a half file behind.
        let temporary = path + ".tmp"
        try encoder.encode(self).write(to: URL(fileURLWithPath: temporary))
        if rename(temporary, path) != 0 {
            throw MockSeedError.renameFailed(path)
        }
    }
}

public enum MockSeedError: Error, Equatable {
    case renameFailed(String)
}

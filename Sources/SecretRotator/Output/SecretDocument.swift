#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Everything an output may show about one rotated secret.
///
/// All outputs of an app are rendered from one document, so they cannot disagree about the
/// secret or its version.
public struct SecretDocument: Sendable {
    public var secret: SecretValue
    public var appId: String
    public var appName: String
    public var version: Int
    public var rotatedAt: Date

    public init(secret: SecretValue, appId: String, appName: String, version: Int, rotatedAt: Date) {
        self.secret = secret
        self.appId = appId
        self.appName = appName
        self.version = version
        self.rotatedAt = rotatedAt
    }

    /// `rotatedAt` in ISO 8601 UTC with whole seconds, the one spelling json and templates share.
    public var rotatedAtISO8601: String {
        rotatedAt.formatted(Date.ISO8601FormatStyle(timeZone: .gmt))
    }
}

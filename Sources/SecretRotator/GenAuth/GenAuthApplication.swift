/// The parts of `ApplicationDto` the daemon uses (`get-application`); it has no secret.
public struct GenAuthApplication: Sendable, Equatable, Decodable {
    public var appId: String
    public var appName: String?
    public var appIdentifier: String?
    public var appType: String?
    public var userPoolId: String?

    public init(appId: String, appName: String? = nil, appIdentifier: String? = nil, appType: String? = nil, userPoolId: String? = nil) {
        self.appId = appId
        self.appName = appName
        self.appIdentifier = appIdentifier
        self.appType = appType
        self.userPoolId = userPoolId
    }
}

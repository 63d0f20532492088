/// The V3 management endpoints the mock implements, named by their last path component.
public enum MockEndpoint: String, Sendable, CaseIterable, Codable {
    case getManagementToken = "get-management-token"
    case refreshApplicationSecret = "refresh-application-secret"
    case getApplicationSecret = "get-application-secret"
    case getApplication = "get-application"
    case listApplications = "list-applications"

    public var path: String { "/api/v3/" + rawValue }

    public var method: String {
        switch self {
        case .getManagementToken, .refreshApplicationSecret: return "POST"
        case .getApplicationSecret, .getApplication, .listApplications: return "GET"
        }
    }

    init?(path: String) {
        guard path.hasPrefix("/api/v3/") else { return nil }
        self.init(rawValue: String(path.dropFirst("/api/v3/".count)))
    }
}

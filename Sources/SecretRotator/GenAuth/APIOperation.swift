/// One call of the V3 management API, described the way the official SDKs send it.
enum APIOperation: Sendable {
    case getManagementToken
    case refreshApplicationSecret(appId: String)
    case getApplicationSecret(appId: String)
    case getApplication(appId: String)

    /// The endpoint name, used in errors and logs.
    var name: String {
        switch self {
        case .getManagementToken: return "get-management-token"
        case .refreshApplicationSecret: return "refresh-application-secret"
        case .getApplicationSecret: return "get-application-secret"
        case .getApplication: return "get-application"
        }
    }

    var path: String { "/api/v3/" + name }

    var isPOST: Bool {
        switch self {
        case .getManagementToken, .refreshApplicationSecret: return true
        case .getApplicationSecret, .getApplication: return false
        }
    }

    var appId: String? {
        switch self {
        case .getManagementToken: return nil
        case .refreshApplicationSecret(let id), .getApplicationSecret(let id), .getApplication(let id): return id
        }
    }

    /// Not idempotent: a lost answer means the server may have acted (Architecture, invariant 3).
    var changesServerState: Bool {
        if case .refreshApplicationSecret = self { return true }
        return false
    }
}

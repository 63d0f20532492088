/// The language of `message` fields, chosen by `x-genauth-lang` / `x-authing-lang` like the
/// real API: `en-*` gives English, anything else (including the SDKs' empty value) Chinese.
struct Language {
    let english: Bool

    init(_ request: MockHTTPRequest) {
        let value = request.header("x-genauth-lang") ?? request.header("x-authing-lang") ?? ""
        english = value.lowercased().hasPrefix("en")
    }

    var success: String { english ? "Operation successful" : "操作成功" }
    var unauthorized: String { english ? "Not logged in, no permission to access this request" : "尚未登录，无权限访问此请求" }
    var tokenExpired: String { english ? "The access token is invalid or expired" : "token 已失效或已过期" }
    var badCredentials: String { english ? "Invalid accessKeyId or accessKeySecret" : "accessKeyId 或 accessKeySecret 错误" }
    var missingCredentials: String { english ? "accessKeyId and accessKeySecret are required" : "请提供 accessKeyId 和 accessKeySecret" }
    var missingAppId: String { english ? "Please provide the application ID" : "请提供应用 ID" }
    var appNotFound: String { english ? "Application does not exist" : "应用不存在" }
    var missingPool: String { english ? "The userpool id header is missing" : "缺少用户池 ID 请求头" }
    var poolMismatch: String { english ? "The userpool id does not match the token" : "用户池 ID 与 token 不匹配" }
    var notFoundPath: String { english ? "Not found" : "资源不存在" }
    var throttled: String {
        english ? "Your request exceeded the maximum allowed, please try again later" : "您的请求已超过最大数量限制，请稍后重试"
    }

    func serverError(_ status: Int) -> String {
        switch status {
        case 502: return english ? "Bad gateway" : "网关错误"
        case 503: return english ? "Service unavailable" : "服务不可用"
        case 504: return english ? "Gateway timeout" : "网关超时"
        default: return english ? "Internal server error" : "服务器内部错误"
        }
    }
}

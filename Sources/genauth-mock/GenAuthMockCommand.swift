import ArgumentParser
import GenAuthMock
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

@main
struct GenAuthMockCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "genauth-mock",
        abstract: "A local GenAuth/Authing V3 management API for tests, demos and benchmarks.",
        discussion: """
            Serves POST /api/v3/get-management-token, POST /api/v3/refresh-application-secret, \
            GET /api/v3/get-application-secret, GET /api/v3/get-application and \
            GET /api/v3/list-applications with the official response envelopes. The official \
            SDKs work against it with host="http://127.0.0.1:PORT".

            The app side a consumer calls with its secret: POST /oidc/token with \
            grant_type=client_credentials, the app id and secret as client_id/client_secret \
            form fields or HTTP Basic (RFC 6749 2.3.1); only the current secret gets a token, \
            any other 401 {"error":"invalid_client"}. Counted per app, not logged.

            Without --seed it serves user pool 62a1b2c3d4e5f60718293a4b, access key \
            mock-access-key-id / mock-access-key-secret, and apps 62a1b2c3d4e5f60718293a01 \
            and 62a1b2c3d4e5f60718293a02 (random initial secrets).

            Admin API (JSON; it exposes secrets, so keep the mock on loopback):
              GET    /__admin/apps            apps: secret, rotationCount,
                                              clientCredentialsAccepted/Refused
              GET    /__admin/apps/APPID      one app
              POST   /__admin/apps            add {"appId","appName"?,"secret"?}
              GET    /__admin/requests        request log (method, path,
                                              header names, body keys,
                                              accessKeyId of token requests)
              DELETE /__admin/requests        clear the log
              GET    /__admin/faults          pending faults
              POST   /__admin/faults          inject a fault (below)
              DELETE /__admin/faults          clear faults
              POST   /__admin/tokens/revoke   invalidate every issued token
              POST   /__admin/config          {"tokenExpiresIn": SECONDS}
              GET    /__admin/stats           tokens issued, token lifetime
              GET    /__admin/issued          every token and secret ever issued
                                              (for leak checks)
              POST   /__admin/save            write state to the --save file

            A fault is {"fault": KIND, "endpoint"?: NAME, "appId"?: ID, "count"?: N} \
            plus the kind's parameters; it hits the next N matching requests (default 1). \
            NAME is get-management-token, refresh-application-secret, \
            get-application-secret, get-application or list-applications. KIND is one of:
              http-status             "status": 500|502|503|..., "jsonBody": bool
              throttled-in-body       HTTP 200 with statusCode 429
              throttled-http          HTTP 429, "retryAfter": seconds
              business-error          "statusCode", "apiCode"?, "message"?
              delay                   "milliseconds", then answer normally
              drop-before-processing  close the connection, change nothing
              drop-after-processing   apply the request, then close
              malformed-json          apply, then truncated JSON
              html-page               HTTP 200 text/html, change nothing
              oversize-body           apply, then "bytes" of padding
              trickle-body            apply, then one body byte every "milliseconds"
              duplicate-secret-key    apply, then "secret" twice (a decoy first)
              empty-secret            apply, then "secret": ""
              invalid-secret          apply, then a secret with a control char
              expired-token           revoke the presented token, answer 401
            """,
        version: "genauth-mock \(GenAuthMockServer.version)"
    )

    @Option(help: "Address to bind. Anything but loopback exposes the admin API.")
    var host: String = "127.0.0.1"

    @Option(help: "Port to listen on; 0 picks a free port (printed on stdout).")
    var port: Int = 0

    @Option(help: "Write the chosen port to this file once listening (for scripts).")
    var portFile: String?

    @Option(help: "JSON seed file: {\"userPoolId\",\"accessKeys\":[{\"accessKeyId\",\"accessKeySecret\"}],\"apps\":[{\"appId\",\"appName\"?,\"secret\"?}],\"tokenExpiresIn\"?}.")
    var seed: String?

    @Option(help: "Save the state (same format as --seed, with current secrets) to this file after every rotation and on POST /__admin/save.")
    var save: String?

    @Option(help: "Management token lifetime in seconds (expires_in); overrides the seed.")
    var tokenExpiresIn: Int?

    @Flag(help: "Log every request (method, path, fault) to stderr.")
    var verbose = false

    mutating func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        if let tokenExpiresIn, tokenExpiresIn <= 0 { throw ValidationError("--token-expires-in must be positive") }
    }

    func run() async throws {
        var seedValue = MockSeed.demo
        if let seed {
            do {
                seedValue = try MockSeed.load(path: seed)
            } catch {
                throw ValidationError("cannot read seed file \(seed): \(error)")
            }
        }
        if let tokenExpiresIn { seedValue.tokenExpiresIn = tokenExpiresIn }
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        var logger = Logger(label: "genauth-mock")
        logger.logLevel = verbose ? .debug : .info
        let state = GenAuthMockState(seed: seedValue, savePath: save)
        let server = try await GenAuthMockServer.start(state: state, host: host, port: port, logger: logger)
        if let portFile {
            let temporary = portFile + ".tmp"
            guard let file = fopen(temporary, "w") else { throw ValidationError("cannot write --port-file \(portFile)") }
            fputs("\(server.port)\n", file)
            fclose(file)
            rename(temporary, portFile)
        }
        print("genauth-mock listening on \(server.baseURL)")
        print("port=\(server.port)")
        fflush(nil)
        // Serve until killed; SIGINT/SIGTERM end the process with their default action.
        while true {
            try await Task.sleep(for: .seconds(3600))
        }
    }
}

import AsyncHTTPClient
import Foundation
import GenAuthMock
import NIOCore
import Testing

/// The mock itself, spoken to with raw HTTP: the behaviours of the real API the daemon relies on.
@Suite("GenAuthMock")
struct GenAuthMockTests {
    struct Reply {
        var status: Int
        var json: [String: Any]
        var headers: [String: String]
    }

    enum Verb { case GET, POST, DELETE }

    static func send(
        _ server: GenAuthMockServer, _ method: Verb, _ path: String, headers: [String: String] = [:], body: String? = nil
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: server.baseURL + path)
        switch method {
        case .GET: request.method = .GET
        case .POST: request.method = .POST
        case .DELETE: request.method = .DELETE
        }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        let json = (try? JSONSerialization.jsonObject(with: Data(bytes.readableBytesView))) as? [String: Any] ?? [:]
        var replyHeaders: [String: String] = [:]
        for header in response.headers { replyHeaders[header.name.lowercased()] = header.value }
        return Reply(status: Int(response.status.code), json: json, headers: replyHeaders)
    }

    static func withMock(_ body: (GenAuthMockServer, String) async throws -> Void) async throws {
        let seed = MockSeed(
            userPoolId: "pool-1", accessKeys: [.init(accessKeyId: "ak", accessKeySecret: "sk")],
            apps: (1...23).map { MockSeed.App(appId: "app-\($0)", appName: "n\($0)") }, tokenExpiresIn: 3600)
        let server = try await GenAuthMockServer.start(state: GenAuthMockState(seed: seed))
        do {
            let reply = try await send(server, .POST, "/api/v3/get-management-token", body: #"{"accessKeyId":"ak","accessKeySecret":"sk"}"#)
            let token = try #require((reply.json["data"] as? [String: Any])?["access_token"] as? String)
            try await body(server, token)
        } catch {
            try? await server.stop()
            throw error
        }
        try await server.stop()
    }

    @Test("the token is a three-part JWT whose payload the Python SDKs' standard base64 decodes")
    func tokenShape() async throws {
        try await Self.withMock { server, token in
            let parts = token.split(separator: ".")
            #expect(parts.count == 3)
            var payload = String(parts[1])
            #expect(!payload.contains("-") && !payload.contains("_"))
            while payload.count % 4 != 0 { payload += "=" }
            let data = try #require(Data(base64Encoded: payload))
            let claims = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            #expect(claims["scoped_userpool_id"] as? String == "pool-1")
            let reply = try await Self.send(
                server, .POST, "/api/v3/get-management-token", body: #"{"accessKeyId":"ak","accessKeySecret":"nope"}"#)
            #expect(reply.status == 200)
            #expect(reply.json["statusCode"] as? Int == 401)
            #expect(reply.json["data"] == nil)
            #expect((reply.json["requestId"] as? String)?.isEmpty == false)
        }
    }

    @Test("Bearer and bare tokens are accepted; a missing, wrong or mismatched one is refused")
    func authentication() async throws {
        try await Self.withMock { server, token in
            let path = "/api/v3/get-application-secret?appId=app-1"
            let pool = ["x-authing-userpool-id": "pool-1"]
            let bearer = try await Self.send(server, .GET, path, headers: pool.merging(["authorization": "Bearer \(token)"]) { $1 })
            #expect(bearer.json["statusCode"] as? Int == 200)
            let bare = try await Self.send(server, .GET, path, headers: pool.merging(["authorization": token]) { $1 })
            #expect(bare.json["statusCode"] as? Int == 200)
            let none = try await Self.send(server, .GET, path, headers: pool)
            #expect(none.status == 200)
            #expect(none.json["statusCode"] as? Int == 401)
            let wrong = try await Self.send(server, .GET, path, headers: pool.merging(["authorization": "Bearer x.y.z"]) { $1 })
            #expect(wrong.json["statusCode"] as? Int == 401)
            let mismatch = try await Self.send(
                server, .GET, path, headers: ["authorization": "Bearer \(token)", "x-genauth-userpool-id": "other"])
            #expect(mismatch.json["statusCode"] as? Int == 403)
            let missing = try await Self.send(server, .GET, path, headers: ["authorization": "Bearer \(token)"])
            #expect(missing.json["statusCode"] as? Int == 400)
        }
    }

    @Test("messages follow x-*-lang; refresh makes a new 32-hex secret and kills the old one")
    func refreshAndLanguage() async throws {
        try await Self.withMock { server, token in
            let headers = ["authorization": "Bearer \(token)", "x-genauth-userpool-id": "pool-1"]
            let old = try #require(server.state.currentSecret(appId: "app-1"))
            let zh = try await Self.send(server, .POST, "/api/v3/refresh-application-secret", headers: headers, body: #"{"appId":"app-1"}"#)
            #expect(zh.json["message"] as? String == "操作成功")
            let secret = try #require((zh.json["data"] as? [String: Any])?["secret"] as? String)
            #expect(secret.count == 32 && secret.allSatisfy(\.isHexDigit))
            #expect(secret != old)
            #expect(server.state.currentSecret(appId: "app-1") == secret)
            let en = try await Self.send(
                server, .GET, "/api/v3/get-application-secret?appId=app-1",
                headers: headers.merging(["x-genauth-lang": "en-US"]) { $1 })
            #expect(en.json["message"] as? String == "Operation successful")
            #expect((en.json["data"] as? [String: Any])?["secret"] as? String == secret)
            let missing = try await Self.send(server, .POST, "/api/v3/refresh-application-secret", headers: headers, body: "{}")
            #expect(missing.json["statusCode"] as? Int == 400)
            let unknown = try await Self.send(server, .POST, "/api/v3/refresh-application-secret", headers: headers, body: #"{"appId":"nope"}"#)
            #expect(unknown.json["statusCode"] as? Int == 404)
            #expect(unknown.json["apiCode"] as? Int == 2011)
        }
    }

    @Test("list-applications pages with limit capped at 50")
    func listApplications() async throws {
        try await Self.withMock { server, token in
            let headers = ["authorization": "Bearer \(token)", "x-genauth-userpool-id": "pool-1"]
            let page3 = try await Self.send(server, .GET, "/api/v3/list-applications?page=3&limit=10", headers: headers)
            let data = try #require(page3.json["data"] as? [String: Any])
            #expect(data["totalCount"] as? Int == 23)
            let list = try #require(data["list"] as? [[String: Any]])
            #expect(list.map { $0["appId"] as? String } == ["app-21", "app-22", "app-23"])
            let all = try await Self.send(server, .GET, "/api/v3/list-applications?limit=500", headers: headers)
            #expect(((all.json["data"] as? [String: Any])?["list"] as? [Any])?.count == 23)
            let first = try await Self.send(server, .GET, "/api/v3/list-applications", headers: headers)
            #expect(((first.json["data"] as? [String: Any])?["list"] as? [Any])?.count == 10)
        }
    }

    @Test("the admin API injects faults, exposes apps and the request log")
    func admin() async throws {
        try await Self.withMock { server, token in
            let headers = ["authorization": "Bearer \(token)", "x-genauth-userpool-id": "pool-1"]
            let inject = try await Self.send(
                server, .POST, "/__admin/faults",
                body: #"{"fault":"throttled-http","retryAfter":9,"endpoint":"refresh-application-secret","appId":"app-2","count":2}"#)
            #expect(inject.json["ok"] as? Bool == true)
            let bad = try await Self.send(server, .POST, "/__admin/faults", body: #"{"fault":"nonsense"}"#)
            #expect(bad.status == 400)
            // Another app is not affected.
            let other = try await Self.send(server, .POST, "/api/v3/refresh-application-secret", headers: headers, body: #"{"appId":"app-1"}"#)
            #expect(other.json["statusCode"] as? Int == 200)
            for _ in 0..<2 {
                let hit = try await Self.send(
                    server, .POST, "/api/v3/refresh-application-secret", headers: headers, body: #"{"appId":"app-2"}"#)
                #expect(hit.status == 429)
                #expect(hit.headers["retry-after"] == "9")
            }
            let after = try await Self.send(server, .POST, "/api/v3/refresh-application-secret", headers: headers, body: #"{"appId":"app-2"}"#)
            #expect(after.json["statusCode"] as? Int == 200)
            let app = try await Self.send(server, .GET, "/__admin/apps/app-2")
            #expect(app.json["rotationCount"] as? Int == 1)
            #expect(app.json["secret"] as? String == server.state.currentSecret(appId: "app-2"))
            let log = try await Self.send(server, .GET, "/__admin/requests")
            let requests = try #require(log.json["requests"] as? [[String: Any]])
            #expect(requests.count == 5)  // token + 4 refreshes; admin calls are not logged
            #expect(requests[1]["bodyKeys"] as? [String] == ["appId"])
            #expect((requests[1]["headerNames"] as? [String])?.contains("authorization") == true)
            #expect(requests.compactMap { $0["fault"] as? String } == ["throttled-http", "throttled-http"])
            _ = try await Self.send(server, .POST, "/__admin/tokens/revoke")
            let revoked = try await Self.send(server, .GET, "/api/v3/get-application?appId=app-1", headers: headers)
            #expect(revoked.json["statusCode"] as? Int == 401)
            // The leak check's list: every token and secret, replaced ones included.
            let issued = try await Self.send(server, .GET, "/__admin/issued")
            #expect(issued.json["tokens"] as? [String] == [token])
            let secrets = try #require(issued.json["secrets"] as? [String])
            #expect(secrets == server.state.issuedValues().secrets)
            #expect(issued.json["accessKeySecrets"] as? [String] == ["sk"])
            #expect(secrets.contains(try #require(server.state.currentSecret(appId: "app-2"))))
            #expect(secrets.count >= 4, "seeded secrets plus the two rotations")
        }
    }

    @Test("drop-before-processing closes without rotating; drop-after rotates")
    func drops() async throws {
        try await Self.withMock { server, token in
            let headers = ["authorization": "Bearer \(token)", "x-genauth-userpool-id": "pool-1"]
            server.state.inject(.init(endpoint: .refreshApplicationSecret, count: 1, fault: .dropBeforeProcessing))
            await #expect(throws: (any Error).self) {
                _ = try await Self.send(server, .POST, "/api/v3/refresh-application-secret", headers: headers, body: #"{"appId":"app-1"}"#)
            }
            #expect(server.state.rotationCount(appId: "app-1") == 0)
            server.state.inject(.init(endpoint: .refreshApplicationSecret, count: 1, fault: .dropAfterProcessing))
            await #expect(throws: (any Error).self) {
                _ = try await Self.send(server, .POST, "/api/v3/refresh-application-secret", headers: headers, body: #"{"appId":"app-1"}"#)
            }
            #expect(server.state.rotationCount(appId: "app-1") == 1)
        }
    }

    @Test("seed files round-trip and rotations are saved")
    func seedAndSave() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mock-seed-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let seedPath = dir.appendingPathComponent("seed.json").path
        try #"{"userPoolId":"p","accessKeys":[{"accessKeyId":"a","accessKeySecret":"s"}],"apps":[{"appId":"x","secret":"0123456789abcdef0123456789abcdef"}]}"#
            .write(toFile: seedPath, atomically: true, encoding: .utf8)
        let seed = try MockSeed.load(path: seedPath)
        #expect(seed.apps.first?.secret == "0123456789abcdef0123456789abcdef")
        let savePath = dir.appendingPathComponent("state.json").path
        let state = GenAuthMockState(seed: seed, savePath: savePath)
        let server = try await GenAuthMockServer.start(state: state)
        let tokenReply = try await Self.send(server, .POST, "/api/v3/get-management-token", body: #"{"accessKeyId":"a","accessKeySecret":"s"}"#)
        let token = try #require((tokenReply.json["data"] as? [String: Any])?["access_token"] as? String)
        _ = try await Self.send(
            server, .POST, "/api/v3/refresh-application-secret",
            headers: ["authorization": "Bearer \(token)", "x-genauth-userpool-id": "p"], body: #"{"appId":"x"}"#)
        try await server.stop()
        let saved = try MockSeed.load(path: savePath)
        #expect(saved.apps.first?.secret == state.currentSecret(appId: "x"))
        #expect(saved.apps.first?.rotationCount == 1)
    }
}

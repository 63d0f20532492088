import Testing

@testable import SecretRotator

@Suite(.tags(.addressSanitizer)) struct JSONDuplicateKeysTests {
    @Test(arguments: [
        (#"{"a":1,"a":2}"#, "a"),
        (#"{"data":{"secret":"x","secret":"y"}}"#, "secret"),
        (#"{"secret":"x","secr\u0065t":"y"}"#, "secret"),
        (#"[{"k":[1,{"z":1,"z":{}}]}]"#, "z"),
        (#"{"a\"b":1, "a\"b" : 2}"#, "a\"b"),
    ])
    func findsRepeatedKeys(_ json: String, _ key: String) {
        #expect(JSONDuplicateKeys.first(in: Array(json.utf8)) == key)
    }

    @Test(arguments: [
        #"{"a":1,"b":{"a":1},"c":[{"a":1},{"a":2}]}"#,
        #"{"a":"a","b":"a"}"#,
        #"{"a":"{\"a\":1,\"a\":2}"}"#,
        #"["a","a"]"#,
        #"{}"#,
        "<html>not json</html>",
        #"{"unterminated"#,
    ])
    func acceptsDistinctKeys(_ json: String) {
        #expect(JSONDuplicateKeys.first(in: Array(json.utf8)) == nil)
    }
}

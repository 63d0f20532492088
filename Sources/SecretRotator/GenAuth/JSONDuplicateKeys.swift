#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Finds an object key that occurs twice in one JSON object.
///
/// RFC 8259 §4 leaves duplicate names' meaning to the implementation, and Foundation's
/// JSONDecoder silently keeps one of them: an answer `{"secret":"A","secret":"B"}` was taken
/// as "A" although a proxy or a different parser could read "B". An answer that two
/// readers can read differently is not trusted. No library offers a strict mode, so this
/// scan walks the structure of text that JSONDecoder has already accepted (it is not a
/// validator) and compares keys after unescaping them with JSONDecoder itself, so
/// `"secr\u0065t"` and `"secret"` are one key.
enum JSONDuplicateKeys {
    /// - Returns: the first repeated key (unescaped), or nil when every object's keys are
    ///   distinct. Bytes that are not JSON yield nil: decoding them reports that.
    static func first(in bytes: [UInt8]) -> String? {
        enum Frame {
            case object(keys: Set<String>, expectingKey: Bool)
            case array
        }
        var stack: [Frame] = []
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "{"):
                stack.append(.object(keys: [], expectingKey: true))
            case UInt8(ascii: "["):
                stack.append(.array)
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                if !stack.isEmpty { stack.removeLast() }
            case UInt8(ascii: ","):
                if case .object(let keys, _) = stack.last {
                    stack[stack.count - 1] = .object(keys: keys, expectingKey: true)
                }
            case UInt8(ascii: "\""):
                let start = index
                index += 1
                while index < bytes.count, bytes[index] != UInt8(ascii: "\"") {
                    if bytes[index] == UInt8(ascii: "\\") { index += 1 }
                    index += 1
                }
                guard index < bytes.count else { return nil }
                if case .object(var keys, true) = stack.last {
                    guard let key = try? JSONDecoder().decode(String.self, from: Data(bytes[start...index])) else {
                        return nil
                    }
                    if keys.contains(key) { return key }
                    keys.insert(key)
                    stack[stack.count - 1] = .object(keys: keys, expectingKey: false)
                }
            default:
                break
            }
            index += 1
        }
        return nil
    }
}

import SystemPackage

/// Reads small text files the config refers to (the config itself, the access key secret,
/// templates, CA files), with errors that name the path and the errno in words.
enum ConfigFileReader {
    struct Contents {
        let text: String
        let mode: FileMode
    }

    static let sizeLimit = 1 << 20

    static func read(_ path: String) throws(ValueSyntaxError) -> Contents {
        let contents: SmallFile.Contents
        do {
            contents = try SmallFile.read(path, limit: sizeLimit)
        } catch {
            switch error {
            case .system(let errno, let step): throw ValueSyntaxError("cannot \(step) \(path): \(explain(errno))")
            case .notRegular: throw ValueSyntaxError("\(path) is not a regular file")
            case .tooLarge(let limit): throw ValueSyntaxError("\(path) is larger than \(limit / 1024) KiB")
            }
        }
        guard let text = String(validating: contents.bytes, as: UTF8.self) else {
            throw ValueSyntaxError("\(path) is not valid UTF-8")
        }
        return Contents(text: text, mode: FileMode(rawValue: contents.permissions))
    }

    static func explain(_ error: any Error) -> String {
        guard let errno = error as? Errno else { return "\(error)" }
        return "\(OutputError.name(of: errno)) (\(errno.description))"
    }
}

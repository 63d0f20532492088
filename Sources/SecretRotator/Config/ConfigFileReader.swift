import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Reads small text files the config refers to (the config itself, the access key secret,
/// templates, CA files), with errors that name the path and the errno in words.
enum ConfigFileReader {
    struct Contents {
        let text: String
        let mode: FileMode
    }

    static let sizeLimit = 1 << 20

    static func read(_ path: String) throws(ValueSyntaxError) -> Contents {
        let descriptor: FileDescriptor
        do {
            descriptor = try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec])
        } catch {
            throw ValueSyntaxError("cannot open \(path): \(explain(error))")
        }
        defer { try? descriptor.close() }
        var status = stat()
        guard fstat(descriptor.rawValue, &status) == 0 else {
            throw ValueSyntaxError("cannot stat \(path): \(explain(Errno(rawValue: errno)))")
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw ValueSyntaxError("\(path) is not a regular file")
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while true {
            let count: Int
            do {
                count = try chunk.withUnsafeMutableBytes { try descriptor.read(into: $0) }
            } catch {
                throw ValueSyntaxError("cannot read \(path): \(explain(error))")
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
            if bytes.count > sizeLimit {
                throw ValueSyntaxError("\(path) is larger than \(sizeLimit / 1024) KiB")
            }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ValueSyntaxError("\(path) is not valid UTF-8")
        }
        return Contents(text: text, mode: FileMode(rawValue: UInt16(status.st_mode & 0o777)))
    }

    static func explain(_ error: any Error) -> String {
        guard let errno = error as? Errno else { return "\(error)" }
        return "\(OutputError.name(of: errno)) (\(errno.description))"
    }
}

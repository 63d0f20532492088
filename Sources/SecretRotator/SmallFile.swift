import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A file as the kernel knows it: two paths with the same identity are one file, however
/// they are spelled (symlinks, hard links, bind mounts of one file system aside).
public struct FileIdentity: Hashable, Sendable {
    public var device: UInt64
    public var inode: UInt64
}

/// Reads a whole small regular file: the config and the files it names, journal records,
/// operator requests. One place for the open/fstat/read loop, the size cap, and the rule that
/// only regular files are read (opened non-blocking, so a FIFO in their place cannot hang us).
enum SmallFile {
    enum Failure: Error, CustomStringConvertible {
        case system(Errno, step: String)
        case notRegular
        case tooLarge(limit: Int)

        var description: String {
            switch self {
            case .system(let errno, let step): "\(step): \(OutputError.name(of: errno)) (\(errno))"
            case .notRegular: "not a regular file"
            case .tooLarge(let limit): "larger than \(limit / 1024) KiB"
            }
        }
    }

    struct Contents {
        let bytes: [UInt8]
        /// Permission bits, e.g. to judge an inline secret in a group-readable config.
        let permissions: UInt16
        /// Owner and (device, inode) of the file that was read, for the trust rule and for
        /// telling whether two paths name one file.
        var owner: uid_t = 0
        var identity: FileIdentity? = nil
    }

    static func read(_ path: String, limit: Int, followSymlinks: Bool = true) throws(Failure) -> Contents {
        var options: FileDescriptor.OpenOptions = [.closeOnExec, .nonBlocking]
        if !followSymlinks { options.insert(.noFollow) }
        let descriptor: FileDescriptor
        do {
            descriptor = try FileDescriptor.open(FilePath(path), .readOnly, options: options)
        } catch {
            throw .system(error as? Errno ?? .ioError, step: "open")
        }
        defer { try? descriptor.close() }
        var status = stat()
        guard fstat(descriptor.rawValue, &status) == 0 else {
            throw .system(Errno(rawValue: errno), step: "stat")
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else { throw .notRegular }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while true {
            let count: Int
            do {
                count = try chunk.withUnsafeMutableBytes { try descriptor.read(into: $0) }
            } catch {
                throw .system(error as? Errno ?? .ioError, step: "read")
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
            if bytes.count > limit { throw .tooLarge(limit: limit) }
        }
        return Contents(
            bytes: bytes, permissions: UInt16(status.st_mode & 0o777), owner: status.st_uid,
            identity: FileIdentity(device: UInt64(status.st_dev), inode: UInt64(status.st_ino)))
    }
}

import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Lists one directory through `readdir`, entry by entry, without ever copying a `dirent`.
///
/// Why this exists: `readdir` returns a pointer into glibc's `getdents64` buffer, and each
/// record there is only `d_reclen` bytes long (19 bytes of header, the name, a NUL, rounded up
/// to 8), not `MemoryLayout<dirent>.size` (280). Copying `entry.pointee` or
/// `entry.pointee.d_name` (a 256-byte tuple) reads past a short record, and when that record
/// ends where the buffer's memory ends the read faults: the SIGSEGV reported for drop
/// directories of ~1,100+ entries. Here the name is read through a pointer to `d_name`, up to
/// its NUL, which the kernel places inside the record (Linux `getdents64(2)`).
///
/// `.` and `..` are skipped. The listing owns a `DIR` stream of its own (closed when the
/// listing ends), so it is neither copyable nor meant to be shared between threads.
public struct DirectoryListing: ~Copyable {
    /// One name in the directory.
    public struct Entry: Sendable, Hashable {
        /// The name decoded as UTF-8, 1 to 255 bytes on Linux. When the name on disk is not
        /// valid UTF-8, invalid sequences are replaced with U+FFFD and `isExactName` is false:
        /// such a name does not lead back to the file, so do not pass it to a system call.
        public let name: String
        /// Whether `name` spells the name on disk byte for byte.
        public let isExactName: Bool
        /// The type `d_type` reports, or nil when the file system does not fill it in
        /// (`DT_UNKNOWN`, e.g. some network and older file systems): `lstat` the name then.
        /// It is the type at listing time; anything that acts on the file must check again.
        public let type: FileType?

        public init(name: String, isExactName: Bool = true, type: FileType?) {
            self.name = name
            self.isExactName = isExactName
            self.type = type
        }
    }

    /// The `DIR *` glibc hands out (an opaque pointer in Swift).
    private let stream: OpaquePointer

    /// Opens the directory at `path` (symlinks in the path are followed, as `opendir` does).
    ///
    /// - Throws: the `open(2)` or `fdopendir(3)` errno, e.g. `ENOENT`, `ENOTDIR`, `EACCES`.
    public init(path: String) throws(Errno) {
        let raw = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard raw >= 0 else { throw Errno(rawValue: errno) }
        try self.init(adopting: raw)
    }

    /// Lists the directory `directory` refers to. The caller keeps `directory`: the listing
    /// reads through a fresh descriptor for it (`openat(fd, ".")`), because `closedir` closes
    /// the descriptor it was given and a shared one would also share the read offset.
    ///
    /// - Throws: the `openat(2)` or `fdopendir(3)` errno.
    public init(directory: FileDescriptor) throws(Errno) {
        let raw = openat(directory.rawValue, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard raw >= 0 else { throw Errno(rawValue: errno) }
        try self.init(adopting: raw)
    }

    private init(adopting raw: Int32) throws(Errno) {
        guard let stream = fdopendir(raw) else {
            let failure = Errno(rawValue: errno)
            _ = close(raw)
            throw failure
        }
        self.stream = stream
    }

    deinit {
        _ = closedir(stream)
    }

    /// The next entry, or nil at the end of the directory.
    ///
    /// - Throws: the errno `readdir(3)` set when it failed (e.g. `EIO`, or `ENOENT` when the
    ///   directory was removed while being read); the end of the directory is not an error.
    ///   Entries already returned stay valid; the listing should not be used further.
    public mutating func next() throws(Errno) -> Entry? {
        while true {
            // readdir returns NULL both at the end and on error; only errno tells them apart,
            // and it is left untouched at the end, so it must be cleared first.
            errno = 0
            guard let entry = readdir(stream) else {
                let failure = errno
                if failure != 0 { throw Errno(rawValue: failure) }
                return nil
            }
            let next = Self.entry(at: entry)
            if next.name == "." || next.name == ".." { continue }
            return next
        }
    }

    /// Every entry of the directory at `path`, in `readdir` order.
    ///
    /// - Throws: the errno of opening or of reading the directory.
    public static func entries(atPath path: String) throws(Errno) -> [Entry] {
        var listing = try DirectoryListing(path: path)
        return try listing.collect()
    }

    /// Every entry of the directory `directory` refers to, in `readdir` order.
    ///
    /// - Throws: the errno of opening or of reading the directory.
    public static func entries(in directory: FileDescriptor) throws(Errno) -> [Entry] {
        var listing = try DirectoryListing(directory: directory)
        return try listing.collect()
    }

    private mutating func collect() throws(Errno) -> [Entry] {
        var entries: [Entry] = []
        while let entry = try next() {
            entries.append(entry)
        }
        return entries
    }

    /// One record of the `getdents64` buffer as an entry. The record may be shorter than
    /// `MemoryLayout<dirent>.size`: only its header, and its name up to the NUL, are read.
    static func entry(at record: UnsafeMutablePointer<dirent>) -> Entry {
        let (name, isExact) = name(of: record)
        return Entry(name: name, isExactName: isExact, type: type(of: record))
    }

    /// The name of one record, read through a pointer to `d_name` and bounded by its NUL:
    /// never a copy of the 256-byte `d_name` tuple, which would read past a short record.
    /// `&entry.pointee.d_name` goes through `pointee`'s addressor, so the closure gets the
    /// record's own memory, not a temporary copy of the field.
    private static func name(of entry: UnsafeMutablePointer<dirent>) -> (name: String, isExact: Bool) {
        withUnsafeMutablePointer(to: &entry.pointee.d_name) { tuple in
            // NAME_MAX + 1 is the tuple's length; the capacity is a promise, nothing reads that far.
            tuple.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { characters in
                if let exact = String(validatingCString: characters) { return (exact, true) }
                return (String(cString: characters), false)
            }
        }
    }

    /// `d_type` as a file type (`DTTOIF`: the `DT_*` value shifted into `S_IFMT`'s bits).
    /// `d_type` sits in the 19-byte header every record has.
    private static func type(of entry: UnsafeMutablePointer<dirent>) -> FileType? {
        let raw = entry.pointee.d_type
        guard raw != UInt8(DT_UNKNOWN) else { return nil }
        return FileType(rawValue: mode_t(raw) << 12)
    }
}

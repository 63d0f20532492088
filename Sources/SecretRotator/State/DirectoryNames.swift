#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Temporary: replaced by the Output module's `DirectoryListing` on merge.
enum DirectoryListing {
    static func names(in path: String) throws -> [String] {
        guard let stream = opendir(path) else { throw ListingError() }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            // Through a pointer to d_name and strlen: the record may be shorter than the tuple.
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 1) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
    struct ListingError: Error {}
}

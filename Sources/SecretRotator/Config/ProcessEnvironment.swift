#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The process environment as a value, so the config loader can be given a fake one in tests.
public enum ProcessEnvironment {
    /// Every `NAME=value` pair of this process's environment, split at the first `=`.
    ///
    /// Reads `environ`, an array of C strings ended by a NULL pointer: each step copies one
    /// pointer out of the array, never past its NULL end, and each string is read up to its
    /// NUL. Like `getenv`, this must not race with `setenv` on another thread (glibc may
    /// reallocate the array); nothing in the daemon calls `setenv`.
    public static var current: [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let pair = String(cString: entry)
            if let equals = pair.firstIndex(of: "=") {
                result[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
            }
            pointer += 1
        }
        return result
    }
}

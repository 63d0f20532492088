import Foundation
import SecretRotatorTestKit
import SystemPackage
import Testing

@testable import SecretRotator

#if canImport(Glibc)
import Glibc
#endif

/// The two acceptance tests for invariant 2, run one after the other: both are heavy on a
/// 2-core machine.
@Suite("Output stress", .serialized, .tags(.addressSanitizer))
struct OutputStressTests {
    /// Distinct values of very different lengths (around the page size, and far beyond it), so a
    /// non-atomic writer would be caught with a short, long or mixed read.
    static let values: [[UInt8]] = [1, 31, 4095, 4096, 4097, 20_000, 65_537, 150_000].enumerated().map { index, length in
        let fill = UInt8(ascii: "a") + UInt8(index)
        return Array("v\(index):".utf8) + [UInt8](repeating: fill, count: length) + [UInt8(ascii: "\n")]
    }

    static func readWhole(_ path: String, into buffer: inout [UInt8]) -> (bytes: Int, errno: Int32) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return (-1, errno) }
        defer { close(fd) }
        var total = 0
        while true {
            if total == buffer.count { buffer.append(contentsOf: [UInt8](repeating: 0, count: buffer.count)) }
            let count = buffer.withUnsafeMutableBytes { raw in
                read(fd, raw.baseAddress! + total, raw.count - total)
            }
            if count < 0 { return (-1, errno) }
            if count == 0 { return (total, 0) }
            total += count
        }
    }

    @Test("torn reads: 10,000 replacements under a reader that never sees a partial, empty or mixed file")
    func tornReads() async throws {
        let directory = try TestDirectory()
        defer { directory.remove() }
        let target = directory.file("secret")
        let writer = AtomicFileWriter()
        let options = AtomicWriteOptions(mode: FilePermissions(rawValue: 0o640))
        try writer.write(Self.values[0], to: target, options: options)

        let valid = Set(Self.values)
        struct Tally { var reads = 0, torn = 0, empty = 0, errors = 0, distinct = Set<Int>() }
        let tally = Locked(Tally())
        let stop = Locked(false)
        let reader = TestThread {
            var buffer = [UInt8](repeating: 0, count: 256 * 1024)
            var local = Tally()
            while !stop.current {
                let (count, error) = Self.readWhole(target, into: &buffer)
                local.reads += 1
                if count < 0 {
                    local.errors += 1
                } else if count == 0 {
                    local.empty += 1
                } else if !valid.contains(Array(buffer[0..<count])) {
                    local.torn += 1
                } else {
                    local.distinct.insert(count)
                }
                _ = error
                if local.reads % 256 == 0 { tally.withLock { $0.reads = local.reads } }
            }
            tally.withLock { $0 = local }
        }
        #expect((try? await waitUntil { tally.current.reads > 0 }) != nil, "reader started")

        let writes = 10_000
        let clock = ContinuousClock()
        let started = clock.now
        for index in 1...writes {
            try writer.write(Self.values[index % Self.values.count], to: target, options: options)
        }
        let elapsed = clock.now - started
        stop.withLock { $0 = true }
        reader.join()

        let result = tally.current
        print("torn-read test: \(writes) replacements in \(elapsed), \(result.reads) reads: \(result.torn) torn, \(result.empty) empty, \(result.errors) read errors, \(result.distinct.count) distinct lengths seen")
        #expect(result.torn == 0)
        #expect(result.empty == 0)
        #expect(result.errors == 0)
        #expect(result.reads >= 1_000, "the reader must really overlap the writes")
        #expect(result.distinct.count > 1, "the reader saw the content change")
        #expect(TestFiles.entries(directory.path) == ["secret"])
    }

    @Test("crash: a writer process SIGKILLed at random moments 200 times leaves old or new, and a start-up sweep removes its temp file")
    func crashes() throws {
        let binary = TestProcess.writeLoopBinary
        try #require(FileManager.default.isExecutableFile(atPath: binary), "built executable at \(binary)")
        let directory = try TestDirectory()
        defer { directory.remove() }
        let target = directory.file("secret")
        let old = String(repeating: "o", count: 40)
        let new = String(repeating: "N", count: 9000)
        let valid: Set<String> = [old, new]
        let writer = AtomicFileWriter()
        let options = AtomicWriteOptions(mode: FilePermissions(rawValue: 0o600))
        try writer.write(Array(old.utf8), to: target, options: options)

        let kills = 200
        var leftovers = 0
        var bad: [String] = []
        let clock = ContinuousClock()
        let started = clock.now
        for round in 0..<kills {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = ["--path", target, "--value", old, "--value", new, "--ready"]
            let out = Pipe()
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            try process.run()
            let pid = process.processIdentifier

            // Wait until the child has completed one write; EOF means it died, and the
            // watchdog turns a hang into a failure instead of a stuck test.
            let waiting = Locked(true)
            DispatchQueue.global().asyncAfter(deadline: .now() + 15) {
                if waiting.current { kill(pid, SIGKILL) }
            }
            var output = Data()
            while !String(decoding: output, as: UTF8.self).contains("ready\n") {
                let chunk = out.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                output.append(chunk)
            }
            waiting.withLock { $0 = false }
            try #require(String(decoding: output, as: UTF8.self).contains("ready\n"), "child \(round) did not get ready")

            // The random moment: somewhere inside the child's next few writes.
            usleep(UInt32.random(in: 0...3_000))
            kill(pid, SIGKILL)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal)

            let content = TestFiles.readString(target) ?? "<unreadable>"
            if !valid.contains(content) { bad.append("round \(round): \(content.count) bytes") }
            let temporaries = TestFiles.temporaries(directory.path)
            if !temporaries.isEmpty { leftovers += 1 }

            // What the engine does when it starts again after a crash.
            let sweep = writer.sweepStaleTemporaries(inDirectory: directory.path)
            if sweep.error != nil || sweep.removed.sorted() != temporaries {
                bad.append("round \(round): swept \(sweep.removed), error \(String(describing: sweep.error)), expected \(temporaries)")
            }
            try writer.write(Array((round.isMultiple(of: 2) ? old : new).utf8), to: target, options: options)
            let entries = TestFiles.entries(directory.path)
            if entries != ["secret"] { bad.append("round \(round): left \(entries)") }
        }
        let elapsed = clock.now - started
        print("crash test: \(kills) SIGKILLs in \(elapsed); \(leftovers) left a temp file behind; \(bad.count) bad states (torn content, or entries left after the sweep and the next write)")
        #expect(bad.isEmpty, "\(bad.prefix(5))")
        #expect(leftovers > 0, "no kill landed mid-write; the test did not exercise the sweep")
    }
}

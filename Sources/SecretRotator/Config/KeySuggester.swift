/// Suggests the key an operator probably meant when they wrote one we do not know.
public enum KeySuggester {
    public static func suggestion(for unknown: String, among known: [String]) -> String? {
        let lowered = unknown.lowercased()
        var best: (key: String, distance: Int)?
        for candidate in known {
            let distance = editDistance(Array(lowered.utf8), Array(candidate.utf8))
            if distance < (best?.distance ?? Int.max) {
                best = (candidate, distance)
            }
        }
        guard let best else { return nil }
        // Short keys tolerate fewer edits, otherwise "id" would suggest anything of length 3.
        let limit = max(1, min(3, best.key.count / 3))
        return best.distance <= limit ? best.key : nil
    }

    /// Damerau-Levenshtein (optimal string alignment), so a swapped pair counts as one typo.
    static func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previousPrevious = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    current[j] = min(current[j], previousPrevious[j - 2] + 1)
                }
            }
            previousPrevious = previous
            previous = current
        }
        return previous[b.count]
    }
}

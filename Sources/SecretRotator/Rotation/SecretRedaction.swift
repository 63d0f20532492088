/// Removes what a log must never carry of a secret from text a program printed (a hook's
/// output): the secret itself and every piece of it of `minimumLength` characters or more,
/// compared without regard to case. A hook that echoes its config prints the secret whole,
/// split across lines, uppercased or cut at a buffer edge; each of those leaves a run of the
/// secret's characters, and each run becomes `<redacted>`. Reordered or interleaved characters
/// are not found: nothing here makes printing a secret safe, it keeps the common accidents out
/// of the journal.
enum SecretRedaction {
    static let marker = "<redacted>"

    /// `text` with every run of at least `minimumLength` characters that occurs in `secret`
    /// (case-insensitively) replaced by `<redacted>`; `text` itself when `secret` is shorter
    /// than `minimumLength`. O(length of text × length of secret).
    static func redacting(_ secret: String, in text: String, minimumLength: Int = 8) -> String {
        let needle = secret.map(folded)
        guard needle.count >= minimumLength, !text.isEmpty else { return text }
        let characters = Array(text)
        let haystack = characters.map(folded)
        let first = Set(needle)
        var result = ""
        var index = 0
        while index < haystack.count {
            var longest = 0
            if first.contains(haystack[index]) {
                for start in needle.indices where needle[start] == haystack[index] {
                    var length = 1
                    while start + length < needle.count, index + length < haystack.count,
                        needle[start + length] == haystack[index + length]
                    {
                        length += 1
                    }
                    longest = max(longest, length)
                }
            }
            if longest >= minimumLength {
                result += marker
                index += longest
            } else {
                result.append(characters[index])
                index += 1
            }
        }
        return result
    }

    /// The character's lower case when that is one character, else the character itself.
    private static func folded(_ character: Character) -> Character {
        let lower = character.lowercased()
        return lower.count == 1 ? Character(lower) : character
    }
}

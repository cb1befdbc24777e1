import Foundation

/// A DNS resource's name pattern (portal spec): exact (`db.corp.example`), `*` within one label
/// (`*.corp.example` also matches `corp.example`), `?` for one character, `**` for any number of labels
/// (`**.corp.example`). Matching ignores case and a trailing dot. The top-level label may not be a
/// wildcard; `localhost` and IP literals are refused.
package struct DNSPattern: Hashable, Sendable {
    /// The normalised pattern: lower case, no trailing dot.
    package let text: String
    private let labels: [Substring]

    package init(_ text: String) throws(DNSPatternError) {
        var name = text.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        guard !name.isEmpty else { throw .invalid(text, "the name is empty") }
        guard name.utf8.count <= 253 else { throw .invalid(text, "a name is at most 253 characters") }
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        for label in labels {
            guard !label.isEmpty else { throw .invalid(text, "a label is empty") }
            guard label.utf8.count <= 63 else { throw .invalid(text, "label \"\(label)\" is over 63 characters") }
            guard label.allSatisfy({ $0.isLetter && $0.isASCII || $0.isNumber && $0.isASCII || "-_*?".contains($0) }) else {
                throw .invalid(text, "label \"\(label)\" has a character a DNS name cannot hold")
            }
            if label.contains("**") && label != "**" { throw .invalid(text, "\"**\" must be a whole label") }
        }
        guard let top = labels.last, !top.contains("*"), !top.contains("?") else {
            throw .invalid(text, "the top-level label may not be a wildcard")
        }
        if name == "localhost" || name.hasSuffix(".localhost") { throw .invalid(text, "localhost is not a resource") }
        if labels.allSatisfy({ $0.allSatisfy(\.isNumber) }) || name.contains(":") {
            throw .invalid(text, "an IP address is not a DNS name; use an ip or cidr resource")
        }
        self.text = name
        self.labels = labels
    }

    /// How specific the pattern is, for "most specific wins": exact, then `?`, then `*`, then `**`.
    package var specificity: Int {
        if labels.contains("**") { return 0 }
        if labels.contains(where: { $0.contains("*") }) { return 1 }
        if labels.contains(where: { $0.contains("?") }) { return 2 }
        return 3
    }

    /// Whether `name` matches.
    package func matches(_ name: String) -> Bool {
        var host = name.lowercased()
        if host.hasSuffix(".") { host.removeLast() }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return Self.match(labels[...], parts[...])
    }

    private static func match(_ pattern: ArraySlice<Substring>, _ name: ArraySlice<Substring>) -> Bool {
        guard let first = pattern.first else { return name.isEmpty }
        if first == "**" {
            // Any number of labels, including none.
            for skip in 0...name.count where match(pattern.dropFirst(), name.dropFirst(skip)) { return true }
            return false
        }
        if first == "*", pattern.count > 1, match(pattern.dropFirst(), name) {
            return true  // "*.corp.example" also matches "corp.example" itself
        }
        guard let label = name.first, matchLabel(first, label) else { return false }
        return match(pattern.dropFirst(), name.dropFirst())
    }

    /// `*` matches any run of characters within the label, `?` exactly one.
    private static func matchLabel(_ pattern: Substring, _ label: Substring) -> Bool {
        guard let first = pattern.first else { return label.isEmpty }
        switch first {
        case "*":
            var rest = label[...]
            while true {
                if matchLabel(pattern.dropFirst(), rest) { return true }
                guard !rest.isEmpty else { return false }
                rest = rest.dropFirst()
            }
        case "?":
            return !label.isEmpty && matchLabel(pattern.dropFirst(), label.dropFirst())
        default:
            return label.first == first && matchLabel(pattern.dropFirst(), label.dropFirst())
        }
    }

    /// Among patterns that match `name`, the most specific (exact, then `?`, then `*`, then `**`; among
    /// equals, the one with more labels).
    package static func mostSpecific(_ patterns: [DNSPattern], matching name: String) -> DNSPattern? {
        patterns.filter { $0.matches(name) }.max { ($0.specificity, $0.labels.count) < ($1.specificity, $1.labels.count) }
    }
}

package enum DNSPatternError: Error, Equatable {
    /// The pattern and what is wrong with it.
    case invalid(String, String)
}

/// A value that must never reach a log, an error message or a description: it prints `[redacted]`.
/// Take the value out with `reveal()` where it is used, and nowhere else.
package struct Secret<Value: Sendable>: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    private let value: Value

    package init(_ value: Value) {
        self.value = value
    }

    package func reveal() -> Value { value }

    package var description: String { "[redacted]" }
    package var debugDescription: String { "[redacted]" }
}

import ArgumentParser
import Foundation

/// The one place that reads the process environment: flags win, then `GATEHOUSE_*` variables, then
/// defaults. Values from the environment are validated like flags, and errors name the variable.
struct Environment {
    let variables: [String: String]

    init(_ variables: [String: String] = ProcessInfo.processInfo.environment) {
        self.variables = variables
    }

    func string(_ flag: String?, _ variable: String) -> String? {
        if let flag { return flag }
        guard let value = variables[variable], !value.isEmpty else { return nil }
        return value
    }

    func value<T>(_ flag: T?, _ variable: String, parse: (String) -> T?) throws -> T? {
        if let flag { return flag }
        guard let text = variables[variable], !text.isEmpty else { return nil }
        guard let value = parse(text) else {
            throw ValidationError("\(variable)=\"\(text)\" is not a valid value")
        }
        return value
    }

    /// Repeatable flags, or a comma-separated variable.
    func list(_ flags: [String], _ variable: String) -> [String] {
        if !flags.isEmpty { return flags }
        return (variables[variable] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
    }

    /// Reads a secret from a file, refusing one that other users can read.
    static func readSecretFile(_ path: String, option: String) throws -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { throw ValidationError("\(option) \(path): cannot read the file") }
        if info.st_mode & 0o077 != 0 {
            throw ValidationError("\(option) \(path): the file is readable by other users; chmod 600 it")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ValidationError("\(option) \(path): cannot read the file")
        }
        let secret = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !secret.isEmpty else { throw ValidationError("\(option) \(path): the file is empty") }
        return secret
    }
}

/// The version every role reports (`gatehouse --version`, the `version` field of `join`).
package enum GatehouseVersion {
    package static let current = "0.1.0-dev"
}

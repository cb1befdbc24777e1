// Codable messages between the portal and relays, gateways and clients. Filled in by the
// realtime issue.

package enum ControlProtocol {}

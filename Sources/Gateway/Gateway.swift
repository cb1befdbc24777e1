// The gateway service: TUN device, WireGuard peer sessions, enforcement, NAT.

package enum Gateway {}

// Noise_IKpsk2 handshake, transport keys, replay window, cookies and timers. Filled in by the
// gateway issues.

package enum WireGuard {}

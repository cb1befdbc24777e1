// The relay service: listener, allocation actors, XDP router control, health and metrics.

package enum Relay {}

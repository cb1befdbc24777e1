// The headless client.

package enum Client {}

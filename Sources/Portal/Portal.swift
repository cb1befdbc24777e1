// The portal: REST admin API, WebSocket API, policy evaluator, presence.

package enum Portal {}

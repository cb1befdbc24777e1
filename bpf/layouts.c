/*
 * Compile-time checks of the layouts in include/gatehouse_maps.h, built for the host as part of the
 * `BPFMaps` module. The same header is compiled for the kernel by the BPF programs; these asserts make
 * an accidental implicit padding or size change a build error on both sides.
 */
#include <stddef.h>
#include "gatehouse_maps.h"

_Static_assert(sizeof(struct counter_config) == 8, "counter_config must stay 8 bytes");
_Static_assert(offsetof(struct counter_config, udp_port) == 2, "counter_config.udp_port offset");
_Static_assert(sizeof(struct counter_stats) == 16, "counter_stats must stay 16 bytes");
_Static_assert(sizeof(struct counter_flow_key) == 16, "counter_flow_key must have no implicit padding");

_Static_assert(sizeof(struct relay_config) == 52, "relay_config must have no implicit padding");
_Static_assert(offsetof(struct relay_config, listen_port) == 4, "relay_config.listen_port offset");
_Static_assert(offsetof(struct relay_config, port_min) == 6, "relay_config.port_min offset");
_Static_assert(offsetof(struct relay_config, port_max) == 8, "relay_config.port_max offset");
_Static_assert(offsetof(struct relay_config, mtu) == 10, "relay_config.mtu offset");
_Static_assert(offsetof(struct relay_config, public_ipv4) == 12, "relay_config.public_ipv4 offset");
_Static_assert(offsetof(struct relay_config, iface_ipv4) == 16, "relay_config.iface_ipv4 offset");
_Static_assert(offsetof(struct relay_config, public_ipv6) == 20, "relay_config.public_ipv6 offset");
_Static_assert(offsetof(struct relay_config, iface_ipv6) == 36, "relay_config.iface_ipv6 offset");
_Static_assert(sizeof(struct relay_channel) == 24, "relay_channel must have no implicit padding");
_Static_assert(offsetof(struct relay_channel, port) == 2, "relay_channel.port offset");
_Static_assert(offsetof(struct relay_channel, channel) == 4, "relay_channel.channel offset");
_Static_assert(offsetof(struct relay_channel, addr) == 8, "relay_channel.addr offset");
_Static_assert(sizeof(struct relay_peer) == 24, "relay_peer must have no implicit padding");
_Static_assert(offsetof(struct relay_peer, port) == 2, "relay_peer.port offset");
_Static_assert(offsetof(struct relay_peer, alloc_port) == 4, "relay_peer.alloc_port offset");
_Static_assert(offsetof(struct relay_peer, addr) == 8, "relay_peer.addr offset");
_Static_assert(sizeof(struct relay_stats) == 16, "relay_stats must stay 16 bytes");
_Static_assert(RELAY_STAT_COUNT == 20, "relay_stat: update the metrics export when adding a reason");

_Static_assert(sizeof(struct gateway_rule_key) == 40, "gateway_rule_key must have no implicit padding");
_Static_assert(offsetof(struct gateway_rule_key, client) == 8, "gateway_rule_key.client offset");
_Static_assert(offsetof(struct gateway_rule_key, destination) == 24, "gateway_rule_key.destination offset");
_Static_assert(sizeof(struct gateway_rule) == 68, "gateway_rule must have no implicit padding");
_Static_assert(offsetof(struct gateway_rule, tcp) == 4, "gateway_rule.tcp offset");
_Static_assert(offsetof(struct gateway_rule, udp) == 36, "gateway_rule.udp offset");
_Static_assert(sizeof(struct gateway_stats) == 16, "gateway_stats must stay 16 bytes");
_Static_assert(GATEWAY_STAT_COUNT == 5, "gateway_stat: update the metrics export when adding a reason");

/* Keeps the module from being empty for toolchains that warn about it. */
int gatehouse_maps_layout_version(void) { return 1; }

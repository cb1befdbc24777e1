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

/* Keeps the module from being empty for toolchains that warn about it. */
int gatehouse_maps_layout_version(void) { return 1; }

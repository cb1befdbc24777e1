// SPDX-License-Identifier: GPL-2.0
/*
 * The gateway's kernel enforcement (gateway spec, "Sessions and enforcement"): a TC classifier on the
 * ingress of the tunnel device, where the packets clients send through their tunnels enter the stack.
 * A packet passes only when its source is a client's tunnel address and an entry of that client in
 * the `gateway_rules` LPM trie holds its destination and allows its protocol and port; anything else
 * is dropped and counted by reason. User space (one actor per client session) writes the entries and
 * remains the source of truth: this program is the defence in depth beneath it.
 *
 * The tunnel device is a TUN (layer 3): there is no Ethernet header, so the headers are read relative
 * to the network header (bpf_skb_load_bytes_relative with BPF_HDR_START_NET), which is where the IP
 * header starts on the TUN and also in BPF_PROG_TEST_RUN (whose input frames carry an Ethernet header),
 * so the tests run the very code the device runs.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "gatehouse_maps.h"

#define IPV6_NEXTHDR_FRAGMENT 44

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, 1 << 20);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct gateway_rule_key);
    __type(value, struct gateway_rule);
} gateway_rules SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, GATEWAY_STAT_COUNT);
    __type(key, __u32);
    __type(value, struct gateway_stats);
} gateway_stats SEC(".maps");

static __always_inline int verdict(struct __sk_buff *skb, __u32 reason)
{
    struct gateway_stats *stats = bpf_map_lookup_elem(&gateway_stats, &reason);
    if (stats) {
        stats->packets += 1;
        stats->bytes += skb->len;
    }
    return reason == GATEWAY_STAT_ALLOWED ? TC_ACT_OK : TC_ACT_SHOT;
}

static __always_inline int port_allowed(const struct gateway_port_range *ranges, __u8 count, __u16 port)
{
#pragma unroll
    for (int i = 0; i < GATEWAY_PORT_RANGES; i++) {
        if (i < count && ranges[i].low <= port && port <= ranges[i].high)
            return 1;
    }
    return 0;
}

SEC("tc")
int gateway_tc(struct __sk_buff *skb)
{
    struct gateway_rule_key key = {};
    __u8 protocol;
    __u32 l4_offset;
    /* Only a first (or unfragmented) piece carries the ports. */
    int later_fragment = 0;

    __u8 first;
    if (bpf_skb_load_bytes_relative(skb, 0, &first, 1, BPF_HDR_START_NET) < 0)
        return verdict(skb, GATEWAY_STAT_MALFORMED);

    if ((first >> 4) == 4) {
        struct iphdr ip;
        if (bpf_skb_load_bytes_relative(skb, 0, &ip, sizeof(ip), BPF_HDR_START_NET) < 0 || ip.ihl < 5)
            return verdict(skb, GATEWAY_STAT_MALFORMED);
        key.family = GATEWAY_FAMILY_IPV4;
        __builtin_memcpy(key.client, &ip.saddr, 4);
        __builtin_memcpy(key.destination, &ip.daddr, 4);
        protocol = ip.protocol;
        l4_offset = ip.ihl * 4;
        later_fragment = (bpf_ntohs(ip.frag_off) & 0x1fff) != 0;
    } else if ((first >> 4) == 6) {
        struct ipv6hdr ip6;
        if (bpf_skb_load_bytes_relative(skb, 0, &ip6, sizeof(ip6), BPF_HDR_START_NET) < 0)
            return verdict(skb, GATEWAY_STAT_MALFORMED);
        key.family = GATEWAY_FAMILY_IPV6;
        __builtin_memcpy(key.client, &ip6.saddr, 16);
        __builtin_memcpy(key.destination, &ip6.daddr, 16);
        protocol = ip6.nexthdr;
        l4_offset = sizeof(ip6);
        if (protocol == IPV6_NEXTHDR_FRAGMENT) {
            /* Fragment header: next header (1), reserved (1), offset and flags (2), id (4). */
            __u8 fragment[4];
            if (bpf_skb_load_bytes_relative(skb, l4_offset, fragment, sizeof(fragment), BPF_HDR_START_NET) < 0)
                return verdict(skb, GATEWAY_STAT_MALFORMED);
            protocol = fragment[0];
            later_fragment = ((((__u16)fragment[2] << 8) | fragment[3]) & 0xfff8) != 0;
            l4_offset += 8;
        }
    } else {
        return verdict(skb, GATEWAY_STAT_MALFORMED);
    }

    key.prefixlen = GATEWAY_KEY_FIXED_BITS + (key.family == GATEWAY_FAMILY_IPV4 ? 32 : 128);
    const struct gateway_rule *rule = bpf_map_lookup_elem(&gateway_rules, &key);
    if (!rule || !(rule->flags & GATEWAY_RULE_CONFIGURED))
        return verdict(skb, GATEWAY_STAT_UNKNOWN_SOURCE);
    if (rule->flags & GATEWAY_RULE_ALLOW_ALL)
        return verdict(skb, GATEWAY_STAT_ALLOWED);
    if (!(rule->flags & GATEWAY_RULE_ICMP) && rule->tcp_count == 0 && rule->udp_count == 0)
        return verdict(skb, GATEWAY_STAT_NO_RULE);

    if (protocol == IPPROTO_ICMP || protocol == IPPROTO_ICMPV6)
        return verdict(skb, (rule->flags & GATEWAY_RULE_ICMP) ? GATEWAY_STAT_ALLOWED : GATEWAY_STAT_FILTERED);
    if (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP)
        return verdict(skb, GATEWAY_STAT_FILTERED);
    /* Later fragments have no ports to check: only a rule allowing everything lets them through. */
    if (later_fragment)
        return verdict(skb, GATEWAY_STAT_FILTERED);

    __be16 ports[2];  /* source, destination: the first four bytes of TCP and UDP headers alike */
    if (bpf_skb_load_bytes_relative(skb, l4_offset, ports, sizeof(ports), BPF_HDR_START_NET) < 0)
        return verdict(skb, GATEWAY_STAT_MALFORMED);
    __u16 port = bpf_ntohs(ports[1]);
    int allowed = protocol == IPPROTO_TCP ? port_allowed(rule->tcp, rule->tcp_count, port)
                                          : port_allowed(rule->udp, rule->udp_count, port);
    return verdict(skb, allowed ? GATEWAY_STAT_ALLOWED : GATEWAY_STAT_FILTERED);
}


/* The benchmark's reference: a classifier that passes everything and does nothing else
 * (bench/gateway.sh runs it beside gateway_tc to show what the rules cost per packet). */
SEC("tc")
int gateway_tc_pass(struct __sk_buff *skb)
{
    return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";

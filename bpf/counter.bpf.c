// SPDX-License-Identifier: GPL-2.0
/*
 * The foundation's test program: counts UDP datagrams to a configured port, per reason and per flow,
 * from XDP or from TC, and always lets the packet through. It exists to prove the BPF tool chain end to
 * end (build plugin, embedding, loading, typed maps, XDP and TC attachment) and to pin down the rule
 * the relay lives by: a config array slot reads as zeros until user space writes it, so a zeroed
 * config means "not configured", never "port 0".
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "gatehouse_maps.h"

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct counter_config);
} counter_config SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, COUNTER_REASON_COUNT);
    __type(key, __u32);
    __type(value, struct counter_stats);
} counter_stats SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 1024);
    __type(key, struct counter_flow_key);
    __type(value, struct counter_stats);
} counter_flows SEC(".maps");

static __always_inline void count(__u32 reason, __u64 bytes)
{
    struct counter_stats *stats = bpf_map_lookup_elem(&counter_stats, &reason);
    if (stats) {
        stats->packets += 1;
        stats->bytes += bytes;
    }
}

static __always_inline void count_flow(const struct iphdr *ip, const struct udphdr *udp, __u64 bytes)
{
    struct counter_flow_key key = {
        .saddr = ip->saddr,
        .daddr = ip->daddr,
        .sport = udp->source,
        .dport = udp->dest,
    };
    struct counter_stats *stats = bpf_map_lookup_elem(&counter_flows, &key);
    if (stats) {
        __sync_fetch_and_add(&stats->packets, 1);
        __sync_fetch_and_add(&stats->bytes, bytes);
        return;
    }
    struct counter_stats first = { .packets = 1, .bytes = bytes };
    bpf_map_update_elem(&counter_flows, &key, &first, BPF_NOEXIST);
}

/* Classifies one Ethernet frame in [data, data_end). Shared by the XDP and TC entry points. */
static __always_inline void classify(void *data, void *data_end)
{
    __u64 bytes = (__u64)(data_end - data);
    __u32 zero = 0;
    const struct counter_config *config = bpf_map_lookup_elem(&counter_config, &zero);
    if (!config || !config->configured) {
        count(COUNTER_NOT_CONFIGURED, bytes);
        return;
    }

    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end) {
        count(COUNTER_OTHER, bytes);
        return;
    }

    struct udphdr *udp;
    struct iphdr *ip4 = 0;
    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        ip4 = (void *)(eth + 1);
        if ((void *)(ip4 + 1) > data_end || ip4->ihl < 5 || ip4->protocol != IPPROTO_UDP) {
            count(COUNTER_OTHER, bytes);
            return;
        }
        udp = (void *)ip4 + ip4->ihl * 4;
    } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = (void *)(eth + 1);
        if ((void *)(ip6 + 1) > data_end || ip6->nexthdr != IPPROTO_UDP) {
            count(COUNTER_OTHER, bytes);
            return;
        }
        udp = (void *)(ip6 + 1);
    } else {
        count(COUNTER_OTHER, bytes);
        return;
    }
    if ((void *)(udp + 1) > data_end) {
        count(COUNTER_OTHER, bytes);
        return;
    }

    /* Both sides of this comparison are in network byte order: no conversion in the kernel. */
    if (udp->dest != config->udp_port) {
        count(COUNTER_OTHER, bytes);
        return;
    }
    count(COUNTER_MATCHED, bytes);
    if (ip4)
        count_flow(ip4, udp, bytes);
}

SEC("xdp")
int counter_xdp(struct xdp_md *ctx)
{
    classify((void *)(long)ctx->data, (void *)(long)ctx->data_end);
    return XDP_PASS;
}

SEC("tc")
int counter_tc(struct __sk_buff *skb)
{
    classify((void *)(long)skb->data, (void *)(long)skb->data_end);
    return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";

// SPDX-License-Identifier: GPL-2.0
/*
 * The relay's fast path: TURN ChannelData relayed in the kernel (spec: relay.md, "XDP fast path").
 *
 *   client -> relay  ChannelData to (relay address, listen port) whose (client address, client port,
 *                    channel) has a route in `relay_to_peer` becomes a plain UDP datagram from
 *                    (relay interface address of the peer's family, allocation port) to the peer;
 *   peer -> relay    a UDP datagram to (relay address, allocation port) whose (peer address, peer port,
 *                    allocation port) has a route in `relay_to_client` becomes ChannelData from
 *                    (relay interface address of the client's family, listen port) to the client;
 *   hairpin          a client route whose peer is the relay's own address and an allocation port is
 *                    resolved through the reverse route of that allocation and emitted as ChannelData
 *                    straight to the other client.
 *
 * IPv4 and IPv6 on either side, in any combination. The frame goes back out the interface it came in
 * on (XDP_TX) with the Ethernet addresses swapped: the next hop is a router in both directions.
 *
 * The program only fast-forwards what user space decided. Every field it relies on is read and
 * checked before a single byte of the packet changes; anything it is not sure about goes up to user
 * space with XDP_PASS, and every decision is counted in `relay_stats`.
 *
 * Choices:
 *   - TTL / hop limit: decremented by one (the input's value minus one, carried across a family change);
 *     an input with TTL <= 1 is passed up. This keeps a routing loop through a misconfigured route (or
 *     an unforeseen hairpin through the router) finite.
 *   - DSCP/ECN: the IPv4 TOS byte / IPv6 traffic class is carried over; the IPv6 flow label is 0.
 *   - IPv4 output: identification and DF are copied from an IPv4 input (MF and offset are never set,
 *     fragments are passed up); from an IPv6 input, identification 0 and DF set (atomic datagram).
 *   - UDP checksum: updated incrementally from the input checksum (see RELAY_CSUM_* in
 *     gatehouse_maps.h); the payload is never touched, only headers are rewritten in front of it.
 *   - One bpf_xdp_adjust_head per packet, by the combined size difference of the IP header (20 bytes
 *     for a family change) and the ChannelData header (4 bytes); all pointers are re-derived and the
 *     bounds re-checked after it.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "gatehouse_maps.h"

#define RELAY_ROUTES_MAX 65536

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct relay_config);
} relay_config SEC(".maps");

/* Client -> peer: (client family, address, port, channel) -> (peer, allocation port). */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, RELAY_ROUTES_MAX);
    __type(key, struct relay_channel);
    __type(value, struct relay_peer);
} relay_to_peer SEC(".maps");

/* Peer -> client: (peer family, address, port, allocation port) -> (client, channel). */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, RELAY_ROUTES_MAX);
    __type(key, struct relay_peer);
    __type(value, struct relay_channel);
} relay_to_client SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, RELAY_STAT_COUNT);
    __type(key, __u32);
    __type(value, struct relay_stats);
} relay_stats SEC(".maps");

#define ETH_HLEN_ 14
#define IP4_HLEN 20
#define IP6_HLEN 40
#define UDP_HLEN 8
#define CD_HLEN 4
#define IP_MF_ 0x2000
#define IP_DF_ 0x4000
#define IP_OFFSET_ 0x1fff
#define DEFAULT_MTU 1500
/* Longest payload the kernel sums when it must compute a checksum from scratch (IPv4 input with
 * checksum 0 relayed to IPv6); longer ones are passed up. Covers every single-buffer XDP frame. */
#define RELAY_SUM_MAX 4096

/*
 * Checksums are summed over 16-bit words as they lie in memory (loaded in host order, never
 * byte-swapped): the one's complement sum is byte-order independent as long as every term is taken
 * the same way, and the folded result is stored back as it is.
 */
static __always_inline __u32 fold16(__u32 s)
{
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    return s;
}

static __always_inline __u32 sum_addr(const __u32 a[4])
{
    __u32 s = 0;
#pragma unroll
    for (int i = 0; i < 4; i++)
        s += (a[i] & 0xffff) + (a[i] >> 16);
    return s;
}

/*
 * Sum of the payload [off, off + len) of the current frame, folded to 16 bits, or -1 if it cannot be
 * read. A global function: verified once, on its own, with only its arguments' bounds known.
 */
__noinline int relay_payload_sum(struct xdp_md *ctx, __u32 off, __u32 len)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    __u32 sum = 0;

    if (off > 128 || len > RELAY_SUM_MAX)
        return -1;
    __u8 *p = data + off;
    for (__u32 i = 0; i < RELAY_SUM_MAX / 2; i++) {
        if (2 * i + 2 > len)
            break;
        __u8 *q = p + 2 * i;
        if ((void *)(q + 2) > data_end)
            return -1;
        sum += *(__u16 *)q;
    }
    if (len & 1) {
        __u32 last = len - 1;
        asm volatile("" : "+r"(last)); /* keep the compiler from checking p + len, reading at -1 */
        if (last >= RELAY_SUM_MAX)
            return -1;
        __u8 *q = p + last;
        if ((void *)(q + 1) > data_end)
            return -1;
        /* The odd byte is the first of a word whose second byte is zero: in memory order that
         * word loads as the byte itself on little-endian and as byte << 8 on big-endian. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        sum += *q;
#else
        sum += (__u32)*q << 8;
#endif
    }
    return fold16(sum);
}

static __always_inline int done(__u32 reason, __u64 bytes, int action)
{
    struct relay_stats *stats = bpf_map_lookup_elem(&relay_stats, &reason);
    if (stats) {
        stats->packets += 1;
        stats->bytes += bytes;
    }
    return action;
}

#define PASS(reason) done(reason, bytes, XDP_PASS)

static __always_inline int config_valid(const struct relay_config *c)
{
    if (c->configured != RELAY_CONFIGURED)
        return 0;
    if (c->checksum_mode != RELAY_CSUM_UPDATE && c->checksum_mode != RELAY_CSUM_V4_ZERO)
        return 0;
    if (!(c->families & (RELAY_HAS_IPV4 | RELAY_HAS_IPV6)))
        return 0;
    if (!c->listen_port || !c->port_min || bpf_ntohs(c->port_min) > bpf_ntohs(c->port_max))
        return 0;
    if ((c->families & RELAY_HAS_IPV4) && !c->iface_ipv4)
        return 0;
    if (c->families & RELAY_HAS_IPV6) {
        const __u32 *a = (const __u32 *)c->iface_ipv6;
        if (!(a[0] | a[1] | a[2] | a[3]))
            return 0;
    }
    return 1;
}

static __always_inline int family_enabled(const struct relay_config *c, __u8 family)
{
    if (family == RELAY_FAMILY_IPV4)
        return c->families & RELAY_HAS_IPV4;
    if (family == RELAY_FAMILY_IPV6)
        return c->families & RELAY_HAS_IPV6;
    return 0;
}

static __always_inline int addr_eq(const __u32 a[4], const __u32 b[4])
{
    return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

static __always_inline int addr_zero(const __u32 a[4])
{
    return !(a[0] | a[1] | a[2] | a[3]);
}

/* The relay's public and interface addresses of a family, in the 16-byte form of the maps. */
static __always_inline void relay_addrs(const struct relay_config *c, __u8 family, __u32 pub[4],
                                        __u32 ifc[4])
{
    if (family == RELAY_FAMILY_IPV4) {
        pub[0] = c->public_ipv4;
        ifc[0] = c->iface_ipv4;
        pub[1] = pub[2] = pub[3] = 0;
        ifc[1] = ifc[2] = ifc[3] = 0;
    } else {
        __builtin_memcpy(pub, c->public_ipv6, 16);
        __builtin_memcpy(ifc, c->iface_ipv6, 16);
    }
}

/* Whether a (validated, non-zero) address is one of the relay's addresses of its family. */
static __always_inline int is_relay_addr(const struct relay_config *c, __u8 family, const __u32 a[4])
{
    __u32 pub[4], ifc[4];
    relay_addrs(c, family, pub, ifc);
    return (!addr_zero(pub) && addr_eq(a, pub)) || addr_eq(a, ifc);
}

/* A map address is well formed for its family: non-zero, and IPv4 zero-padded. */
static __always_inline int addr_valid(__u8 family, const __u32 a[4])
{
    if (family == RELAY_FAMILY_IPV4)
        return a[0] && !(a[1] | a[2] | a[3]);
    if (family == RELAY_FAMILY_IPV6)
        return !addr_zero(a);
    return 0;
}

static __always_inline int port_in_range(const struct relay_config *c, __be16 port)
{
    __u16 p = bpf_ntohs(port);
    return p >= bpf_ntohs(c->port_min) && p <= bpf_ntohs(c->port_max);
}

/* A client endpoint read from a map is usable: known and available family, port, channel, address. */
static __always_inline int channel_valid(const struct relay_config *c, const struct relay_channel *ch)
{
    __u16 n = bpf_ntohs(ch->channel);
    return family_enabled(c, ch->family) && ch->port && n >= 0x4000 && n <= 0x7fff &&
           addr_valid(ch->family, (const __u32 *)ch->addr);
}

/* Everything read from the input frame; network byte order unless noted. */
struct relay_in {
    __u32 saddr[4];     /* 16-byte map form */
    __u32 daddr[4];
    __u8 eth_dst[6];
    __u8 eth_src[6];
    __be16 sport;
    __be16 dport;
    __be16 udp_len;
    __be16 udp_check;
    __be16 ip_id;       /* IPv4 only */
    __be16 frag_off;    /* IPv4 only, DF bit at most */
    __be16 cd_channel;  /* ChannelData header, client path only */
    __be16 cd_len;
    __u16 payload_len;  /* host order: UDP payload length */
    __u8 family;
    __u8 tos;
    __u8 ttl;
    __u8 l3_len;        /* 20 or 40 */
    __u8 has_cd;        /* input carries a ChannelData header */
    __u8 pad;
};

/* The datagram to emit. */
struct relay_out {
    __u32 saddr[4];
    __u32 daddr[4];
    __be16 sport;
    __be16 dport;
    __be16 channel;     /* when has_cd */
    __be16 udp_check;
    __u8 family;
    __u8 has_cd;
    __u16 pad;
};

SEC("xdp")
int gatehouse_relay_xdp(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    __u64 bytes = (__u64)(data_end - data);
    __u32 zero = 0;

    const struct relay_config *cfg = bpf_map_lookup_elem(&relay_config, &zero);
    if (!cfg || !config_valid(cfg))
        return PASS(RELAY_STAT_PASS_NOT_CONFIGURED);

    /* ---- parse and validate; nothing is written before the rewrite below ---- */
    struct relay_in in = {};
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return PASS(RELAY_STAT_PASS_NOT_IP);
    __builtin_memcpy(in.eth_dst, eth->h_dest, ETH_ALEN);
    __builtin_memcpy(in.eth_src, eth->h_source, ETH_ALEN);

    struct udphdr *udp;
    __u32 ip_payload_len;
    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = (void *)(eth + 1);
        if ((void *)(ip + 1) > data_end)
            return PASS(RELAY_STAT_PASS_MALFORMED);
        if (ip->version != 4)
            return PASS(RELAY_STAT_PASS_MALFORMED);
        if (ip->ihl != 5)
            return PASS(RELAY_STAT_PASS_IP_OPTIONS);
        if (ip->frag_off & bpf_htons(IP_MF_ | IP_OFFSET_))
            return PASS(RELAY_STAT_PASS_FRAGMENT);
        if (ip->protocol != IPPROTO_UDP)
            return PASS(RELAY_STAT_PASS_NOT_UDP);
        __u32 tot_len = bpf_ntohs(ip->tot_len);
        if (tot_len < IP4_HLEN + UDP_HLEN || (void *)ip + tot_len > data_end)
            return PASS(RELAY_STAT_PASS_MALFORMED);
        /* A header with a bad checksum would be dropped by the stack: do not launder it. */
        __u32 hsum = 0;
        const __u16 *w = (const __u16 *)ip;
#pragma unroll
        for (int i = 0; i < IP4_HLEN / 2; i++)
            hsum += w[i];
        if (fold16(hsum) != 0xffff)
            return PASS(RELAY_STAT_PASS_MALFORMED);
        in.family = RELAY_FAMILY_IPV4;
        in.saddr[0] = ip->saddr;
        in.daddr[0] = ip->daddr;
        in.tos = ip->tos;
        in.ttl = ip->ttl;
        in.ip_id = ip->id;
        in.frag_off = ip->frag_off & bpf_htons(IP_DF_);
        in.l3_len = IP4_HLEN;
        ip_payload_len = tot_len - IP4_HLEN;
        udp = (void *)(ip + 1);
    } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = (void *)(eth + 1);
        if ((void *)(ip6 + 1) > data_end)
            return PASS(RELAY_STAT_PASS_MALFORMED);
        if (ip6->version != 6)
            return PASS(RELAY_STAT_PASS_MALFORMED);
        switch (ip6->nexthdr) {
        case IPPROTO_UDP:
            break;
        case IPPROTO_FRAGMENT:
            return PASS(RELAY_STAT_PASS_FRAGMENT);
        case IPPROTO_HOPOPTS:
        case IPPROTO_ROUTING:
        case IPPROTO_DSTOPTS:
        case IPPROTO_AH:
        case IPPROTO_ESP:
        case 135: /* mobility */
        case 139: /* HIP */
        case 140: /* shim6 */
        case 253: /* experimental */
        case 254:
            return PASS(RELAY_STAT_PASS_IP_OPTIONS);
        default:
            return PASS(RELAY_STAT_PASS_NOT_UDP);
        }
        ip_payload_len = bpf_ntohs(ip6->payload_len);
        if ((void *)(ip6 + 1) + ip_payload_len > data_end)
            return PASS(RELAY_STAT_PASS_MALFORMED);
        in.family = RELAY_FAMILY_IPV6;
        __builtin_memcpy(in.saddr, &ip6->saddr, 16);
        __builtin_memcpy(in.daddr, &ip6->daddr, 16);
        in.tos = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
        in.ttl = ip6->hop_limit;
        in.l3_len = IP6_HLEN;
        udp = (void *)(ip6 + 1);
    } else {
        return PASS(RELAY_STAT_PASS_NOT_IP);
    }

    if ((void *)(udp + 1) > data_end)
        return PASS(RELAY_STAT_PASS_MALFORMED);
    __u32 udp_len = bpf_ntohs(udp->len);
    if (udp_len < UDP_HLEN || udp_len != ip_payload_len)
        return PASS(RELAY_STAT_PASS_MALFORMED);
    /* UDP checksum 0 is "none" in IPv4 and invalid in IPv6 (the stack drops it). */
    if (in.family == RELAY_FAMILY_IPV6 && udp->check == 0)
        return PASS(RELAY_STAT_PASS_MALFORMED);
    in.sport = udp->source;
    in.dport = udp->dest;
    in.udp_len = udp->len;
    in.udp_check = udp->check;
    in.payload_len = udp_len - UDP_HLEN;

    /* Ours? Both sides of every port and address comparison are in network byte order. */
    if (!family_enabled(cfg, in.family) || !is_relay_addr(cfg, in.family, in.daddr))
        return PASS(RELAY_STAT_PASS_NOT_RELAY_ADDR);
    int to_listen = in.dport == cfg->listen_port;
    if (!to_listen && !port_in_range(cfg, in.dport))
        return PASS(RELAY_STAT_PASS_NOT_RELAY_PORT);
    if (in.sport == 0 || in.sport == bpf_htons(53))
        return PASS(RELAY_STAT_PASS_SRC_PORT);

    /* ---- decide ---- */
    struct relay_out out = {};
    __u32 stat;
    if (to_listen) {
        __u8 *p = (void *)(udp + 1);
        if (in.payload_len < 1)
            return PASS(RELAY_STAT_PASS_NOT_CHANNELDATA);
        if ((void *)(p + 1) > data_end)
            return PASS(RELAY_STAT_PASS_MALFORMED);
        if (p[0] <= 0x03)
            return PASS(RELAY_STAT_PASS_STUN);
        if (p[0] < 0x40 || p[0] > 0x7f)
            return PASS(RELAY_STAT_PASS_NOT_CHANNELDATA);
        if (in.payload_len < CD_HLEN)
            return PASS(RELAY_STAT_PASS_CD_LENGTH);
        if ((void *)(p + CD_HLEN) > data_end)
            return PASS(RELAY_STAT_PASS_MALFORMED);
        in.cd_channel = *(__be16 *)p;
        in.cd_len = *(__be16 *)(p + 2);
        /* Exact match: padded ChannelData (length < payload - 4) goes up like any mismatch. */
        if (bpf_ntohs(in.cd_len) != in.payload_len - CD_HLEN)
            return PASS(RELAY_STAT_PASS_CD_LENGTH);
        in.has_cd = 1;

        struct relay_channel key = {};
        key.family = in.family;
        key.port = in.sport;
        key.channel = in.cd_channel;
        __builtin_memcpy(key.addr, in.saddr, 16);
        const struct relay_peer *found = bpf_map_lookup_elem(&relay_to_peer, &key);
        if (!found)
            return PASS(RELAY_STAT_PASS_NO_ROUTE);
        struct relay_peer route = *found; /* one consistent copy; user space may update the entry */
        if (!family_enabled(cfg, route.family) || !addr_valid(route.family, (__u32 *)route.addr) ||
            !route.port || !port_in_range(cfg, route.alloc_port))
            return PASS(RELAY_STAT_PASS_UNSAFE);

        if (is_relay_addr(cfg, route.family, (__u32 *)route.addr)) {
            /* Hairpin: the peer is another allocation on this relay. Its reverse route is keyed by
             * (this relay's address, this allocation's port as the peer port, its own port). */
            if (!port_in_range(cfg, route.port))
                return PASS(RELAY_STAT_PASS_NO_ROUTE);
            struct relay_peer rkey = {};
            rkey.family = route.family;
            rkey.port = route.alloc_port;
            rkey.alloc_port = route.port;
            __builtin_memcpy(rkey.addr, route.addr, 16);
            const struct relay_channel *other = bpf_map_lookup_elem(&relay_to_client, &rkey);
            if (!other) {
                /* The other client may have bound the relay's other address of this family
                 * (public vs interface). */
                __u32 pub[4], ifc[4];
                relay_addrs(cfg, route.family, pub, ifc);
                if (addr_eq((__u32 *)rkey.addr, ifc))
                    __builtin_memcpy(rkey.addr, pub, 16);
                else
                    __builtin_memcpy(rkey.addr, ifc, 16);
                if (!addr_zero((__u32 *)rkey.addr))
                    other = bpf_map_lookup_elem(&relay_to_client, &rkey);
            }
            if (!other)
                return PASS(RELAY_STAT_PASS_NO_ROUTE);
            struct relay_channel client = *other;
            if (!channel_valid(cfg, &client))
                return PASS(RELAY_STAT_PASS_UNSAFE);
            out.family = client.family;
            __builtin_memcpy(out.daddr, client.addr, 16);
            out.sport = cfg->listen_port;
            out.dport = client.port;
            out.channel = client.channel;
            out.has_cd = 1;
            stat = RELAY_STAT_HAIRPIN;
        } else {
            out.family = route.family;
            __builtin_memcpy(out.daddr, route.addr, 16);
            out.sport = route.alloc_port;
            out.dport = route.port;
            out.has_cd = 0;
            stat = RELAY_STAT_TO_PEER;
        }
    } else {
        struct relay_peer key = {};
        key.family = in.family;
        key.port = in.sport;
        key.alloc_port = in.dport;
        __builtin_memcpy(key.addr, in.saddr, 16);
        const struct relay_channel *found = bpf_map_lookup_elem(&relay_to_client, &key);
        if (!found)
            return PASS(RELAY_STAT_PASS_NO_ROUTE);
        struct relay_channel client = *found;
        if (!channel_valid(cfg, &client))
            return PASS(RELAY_STAT_PASS_UNSAFE);
        out.family = client.family;
        __builtin_memcpy(out.daddr, client.addr, 16);
        out.sport = cfg->listen_port;
        out.dport = client.port;
        out.channel = client.channel;
        out.has_cd = 1;
        stat = RELAY_STAT_TO_CLIENT;
    }
    {
        __u32 pub[4];
        relay_addrs(cfg, out.family, pub, out.saddr);
    }

    /* ---- sizes, TTL, checksum: still nothing written ---- */
    if (in.ttl <= 1)
        return PASS(RELAY_STAT_PASS_TTL);
    __u32 payload_len = in.payload_len - (in.has_cd ? CD_HLEN : 0);
    __u32 out_l3_len = out.family == RELAY_FAMILY_IPV4 ? IP4_HLEN : IP6_HLEN;
    __u32 out_udp_len = UDP_HLEN + (out.has_cd ? CD_HLEN : 0) + payload_len;
    __u32 mtu = cfg->mtu ? bpf_ntohs(cfg->mtu) : DEFAULT_MTU;
    if (out_l3_len + out_udp_len > mtu || out_udp_len > 0xffff)
        return PASS(RELAY_STAT_PASS_TOO_BIG);
    __be16 out_udp_len_be = bpf_htons(out_udp_len);
    __be16 out_cd_len_be = bpf_htons(payload_len);

    /* Sums of everything the checksum covers except the payload: pseudo-header (addresses,
     * protocol, UDP length), UDP header without its checksum, ChannelData header. */
    __u32 new_sum = sum_addr(out.saddr) + sum_addr(out.daddr) + bpf_htons(IPPROTO_UDP) +
                    2 * (__u32)out_udp_len_be + out.sport + out.dport;
    if (out.has_cd)
        new_sum += (__u32)out.channel + out_cd_len_be;

    if (in.udp_check == 0) {
        /* IPv4 input without checksum (IPv6 inputs without one were passed up above). */
        if (out.family == RELAY_FAMILY_IPV4) {
            out.udp_check = 0;
        } else {
            __u32 off = ETH_HLEN_ + in.l3_len + UDP_HLEN + (in.has_cd ? CD_HLEN : 0);
            int psum = relay_payload_sum(ctx, off, payload_len);
            if (psum < 0)
                return PASS(RELAY_STAT_PASS_UNSAFE);
            __u32 c = ~fold16(new_sum + (__u32)psum) & 0xffff;
            out.udp_check = c ? c : 0xffff;
        }
    } else if (out.family == RELAY_FAMILY_IPV4 && cfg->checksum_mode == RELAY_CSUM_V4_ZERO) {
        out.udp_check = 0;
    } else {
        /* Incremental (RFC 1624): payload sum = ~check - old terms; check' = ~(payload + new terms).
         * A corrupted input therefore stays detectably corrupted. */
        __u32 old_sum = sum_addr(in.saddr) + sum_addr(in.daddr) + bpf_htons(IPPROTO_UDP) +
                        2 * (__u32)in.udp_len + in.sport + in.dport;
        if (in.has_cd)
            old_sum += (__u32)in.cd_channel + in.cd_len;
        __u32 s = (~(__u32)in.udp_check & 0xffff) + (~fold16(old_sum) & 0xffff) + fold16(new_sum);
        __u32 c = ~fold16(s) & 0xffff;
        out.udp_check = c ? c : 0xffff; /* a computed 0 is sent as 0xffff (0 means "none") */
    }

    /* ---- rewrite: one head adjust, then every header written afresh in front of the payload ---- */
    int delta = (int)(in.l3_len + (in.has_cd ? CD_HLEN : 0)) - (int)(out_l3_len + (out.has_cd ? CD_HLEN : 0));
    if (delta && bpf_xdp_adjust_head(ctx, delta))
        return PASS(RELAY_STAT_PASS_UNSAFE); /* nothing changed yet */

    data = (void *)(long)ctx->data;
    data_end = (void *)(long)ctx->data_end;
    eth = data;
    if (out.family == RELAY_FAMILY_IPV4) {
        struct iphdr *ip = (void *)(eth + 1);
        udp = (void *)(ip + 1);
        __u8 *cd = (void *)(udp + 1);
        if ((void *)cd > data_end)
            goto undo;
        if (out.has_cd && (void *)(cd + CD_HLEN) > data_end)
            goto undo;
        __builtin_memcpy(eth->h_dest, in.eth_src, ETH_ALEN);
        __builtin_memcpy(eth->h_source, in.eth_dst, ETH_ALEN);
        eth->h_proto = bpf_htons(ETH_P_IP);
        *(__u8 *)ip = 0x45;
        ip->tos = in.tos;
        ip->tot_len = bpf_htons(out_l3_len + out_udp_len);
        if (in.family == RELAY_FAMILY_IPV4) {
            ip->id = in.ip_id;
            ip->frag_off = in.frag_off;
        } else {
            ip->id = 0;
            ip->frag_off = bpf_htons(IP_DF_);
        }
        ip->ttl = in.ttl - 1;
        ip->protocol = IPPROTO_UDP;
        ip->check = 0;
        ip->saddr = out.saddr[0];
        ip->daddr = out.daddr[0];
        __u32 hsum = 0;
        const __u16 *w = (const __u16 *)ip;
#pragma unroll
        for (int i = 0; i < IP4_HLEN / 2; i++)
            hsum += w[i];
        ip->check = ~fold16(hsum) & 0xffff;
        udp->source = out.sport;
        udp->dest = out.dport;
        udp->len = out_udp_len_be;
        udp->check = out.udp_check;
        if (out.has_cd) {
            *(__be16 *)cd = out.channel;
            *(__be16 *)(cd + 2) = out_cd_len_be;
        }
    } else {
        struct ipv6hdr *ip6 = (void *)(eth + 1);
        udp = (void *)(ip6 + 1);
        __u8 *cd = (void *)(udp + 1);
        if ((void *)cd > data_end)
            goto undo;
        if (out.has_cd && (void *)(cd + CD_HLEN) > data_end)
            goto undo;
        __builtin_memcpy(eth->h_dest, in.eth_src, ETH_ALEN);
        __builtin_memcpy(eth->h_source, in.eth_dst, ETH_ALEN);
        eth->h_proto = bpf_htons(ETH_P_IPV6);
        /* version 6, traffic class, flow label 0 */
        *(__be32 *)ip6 = bpf_htonl(0x60000000 | ((__u32)in.tos << 20));
        ip6->payload_len = out_udp_len_be;
        ip6->nexthdr = IPPROTO_UDP;
        ip6->hop_limit = in.ttl - 1;
        __builtin_memcpy(&ip6->saddr, out.saddr, 16);
        __builtin_memcpy(&ip6->daddr, out.daddr, 16);
        udp->source = out.sport;
        udp->dest = out.dport;
        udp->len = out_udp_len_be;
        udp->check = out.udp_check;
        if (out.has_cd) {
            *(__be16 *)cd = out.channel;
            *(__be16 *)(cd + 2) = out_cd_len_be;
        }
    }
    return done(stat, bytes, XDP_TX);

undo:
    /* Unreachable (the frame holds the input headers, so it holds the output headers), but the
     * verifier wants the check: no byte was written, move the head back and pass the frame up. */
    if (delta && bpf_xdp_adjust_head(ctx, -delta))
        return done(RELAY_STAT_DROPPED, bytes, XDP_DROP);
    return PASS(RELAY_STAT_PASS_UNSAFE);
}

char LICENSE[] SEC("license") = "GPL";

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
 *
 * Layout: gatehouse_relay_xdp, at the end, is the list of phases (parse, classify, route, plan,
 * checksum, rewrite). Each phase is an inlined function that fills `struct relay_in` (what was read)
 * or `struct relay_out` (what to emit) and returns RELAY_CONTINUE, or returns the relay_stat reason to
 * pass the packet up with. Only the last phase, relay_rewrite, writes to the frame.
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

/* ---- wire constants ------------------------------------------------------------------------------ */

/* Header sizes of the only layouts the program rewrites (Ethernet is linux/if_ether.h's ETH_HLEN). */
#define IP4_HLEN 20         /* IPv4 header without options (RFC 791, section 3.1) */
#define IP6_HLEN 40         /* IPv6 fixed header (RFC 8200, section 3) */
#define UDP_HLEN 8          /* RFC 768 */
#define CD_HLEN 4           /* ChannelData header: channel number, length (RFC 8656, section 12.4) */

/* IPv4 (RFC 791, section 3.1). The "_" suffixes keep clear of the kernel's own IP_MF & co. */
#define IP4_VERSION 4
#define IP4_IHL_NO_OPTIONS (IP4_HLEN / 4)    /* IHL counts 32-bit words */
#define IP4_VERSION_IHL ((IP4_VERSION << 4) | IP4_IHL_NO_OPTIONS)  /* first byte we emit: 0x45 */
#define IP_MF_ 0x2000       /* flags and fragment offset field, host order */
#define IP_DF_ 0x4000
#define IP_OFFSET_ 0x1fff

/* IPv6 (RFC 8200, section 3): the first 32-bit word is version (4 bits), traffic class (8), flow
 * label (20). */
#define IP6_VERSION 6
#define IP6_VERSION_SHIFT 28
#define IP6_TCLASS_SHIFT 20

/* Next-header values of IPv6 extension headers (RFC 8200, section 4; IANA "IPv6 Extension Header
 * Types") that linux/in.h and linux/in6.h do not name. The program walks none of them. */
enum {
    IP6_NEXTHDR_HIP = 139,          /* Host Identity Protocol, RFC 7401 */
    IP6_NEXTHDR_SHIM6 = 140,        /* RFC 5533 */
    IP6_NEXTHDR_EXPERIMENT1 = 253,  /* experimentation and testing, RFC 3692 / RFC 4727 */
    IP6_NEXTHDR_EXPERIMENT2 = 254,
};

/* UDP (RFC 768): checksum 0 means "none" (allowed in IPv4 only: RFC 8200, section 8.1), so a checksum
 * that computes to 0 is sent as 0xffff, the other representation of zero in one's complement. */
#define UDP_CSUM_NONE 0
#define UDP_CSUM_MANGLED_0 0xffff
#define UDP_LEN_MAX 0xffff  /* the length field is 16 bits */

/* The one's complement sum of a header that includes its correct checksum (RFC 1071). */
#define CSUM_VALID 0xffff

/* A reply from a DNS server (RFC 1035) to the host's own resolver may arrive at an ephemeral port
 * inside the allocation range: it belongs to the stack, never to a peer. */
#define DNS_PORT 53

/*
 * On the listen port, the first byte tells STUN from ChannelData (RFC 7983): 0-3 is STUN; ChannelData
 * starts with its channel number. Channel numbers are 0x4000-0x7FFF, the range of RFC 5766 (section 11)
 * that deployed clients still use; RFC 8656 (section 12) narrows it to 0x4000-0x4FFF (relay.md,
 * "Compatibility notes").
 */
#define STUN_FIRST_BYTE_MAX 0x03
#define CHANNEL_MIN 0x4000
#define CHANNEL_MAX 0x7fff

#define DEFAULT_MTU 1500    /* Ethernet (RFC 894), when relay_config.mtu is 0 */

/* Longest payload the kernel sums when it must compute a checksum from scratch (IPv4 input with
 * checksum 0 relayed to IPv6); longer ones are passed up. Covers every single-buffer XDP frame. */
#define RELAY_SUM_MAX 4096
/* Bound on the payload offset that relay_payload_sum accepts, for the verifier; the longest header
 * stack in front of a payload is Ethernet + IPv6 + UDP + ChannelData = 66 bytes. */
#define RELAY_SUM_OFF_MAX 128

/* ---- checksums ----------------------------------------------------------------------------------- */

/*
 * Checksums are summed over words as they lie in memory (loaded in host order, never byte-swapped):
 * the one's complement sum is byte-order independent as long as every term is taken the same way,
 * and the folded result is stored back as it is.
 */
static __always_inline __u32 fold16(__u32 s)
{
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    return s;
}

/*
 * Headers are summed as 32-bit words into 64 bits and folded once at the end: 2^16 = 1 modulo 0xffff,
 * so a 32-bit word counts as its two 16-bit halves (RFC 1071, section 2). Every sum folded here is
 * non-zero, and for those the fold is the same 1..0xffff value that summing 16-bit words gives: the
 * bytes written are those of a 16-bit summation, for half the loads and adds (and one fold instead of
 * three for the incremental UDP update).
 */
static __always_inline __u32 fold64(__u64 s)
{
    s = (s & 0xffffffff) + (s >> 32);
    s = (s & 0xffffffff) + (s >> 32);
    return fold16((__u32)s);
}

/* 2^48 - 1: a multiple of 0xffff, so zero in one's complement arithmetic, and larger than any unfolded
 * sum below (eight 32-bit words and a few 16-bit ones), so CSUM_ZERO48 - x is -x, RFC 1624's ~x,
 * without folding x first. */
#define CSUM_ZERO48 0xffffffffffffULL

static __always_inline __u64 sum_addr(const __u32 a[4])
{
    return (__u64)a[0] + a[1] + a[2] + a[3];
}

/* Sum of the 20-byte IPv4 header, its checksum field included. The 32-bit loads are aligned as the
 * verifier counts alignment where it checks it (IP header on a 4-byte boundary, NET_IP_ALIGN). */
static __always_inline __u64 ipv4_header_sum(const struct iphdr *ip)
{
    const __u32 *w = (const __u32 *)ip;
    return (__u64)w[0] + w[1] + w[2] + w[3] + w[4];
}

/*
 * Sum of everything a UDP checksum covers except the payload: pseudo-header (addresses, protocol, UDP
 * length), UDP header without its checksum, and the ChannelData header when there is one. The length
 * appears twice: once in the pseudo-header, once in the UDP header.
 */
static __always_inline __u64 udp_header_terms(const __u32 saddr[4], const __u32 daddr[4], __be16 udp_len,
                                              __be16 sport, __be16 dport, int has_cd, __be16 channel,
                                              __be16 cd_len)
{
    __u64 s = sum_addr(saddr) + sum_addr(daddr) + bpf_htons(IPPROTO_UDP) + 2 * (__u32)udp_len + sport +
              dport;
    if (has_cd)
        s += (__u32)channel + cd_len;
    return s;
}

/* The checksum field for a folded sum: its complement, a computed 0 sent as 0xffff (0 means "none"). */
static __always_inline __u16 csum_field(__u32 folded)
{
    __u32 c = ~folded & 0xffff;
    return c ? c : UDP_CSUM_MANGLED_0;
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

    if (off > RELAY_SUM_OFF_MAX || len > RELAY_SUM_MAX)
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

/* ---- verdicts ------------------------------------------------------------------------------------ */

/* What a phase returns to let the next one run; any other value is the relay_stat reason to pass
 * the packet up with. Not a stats index. */
#define RELAY_CONTINUE RELAY_STAT_COUNT

/* Counts the decision (packets and received frame bytes) and returns the verdict. */
static __always_inline int done(__u32 reason, __u64 bytes, int action)
{
    struct relay_stats *stats = bpf_map_lookup_elem(&relay_stats, &reason);
    if (stats) {
        stats->packets += 1;
        stats->bytes += bytes;
    }
    return action;
}

static __always_inline int pass(__u32 reason, __u64 bytes)
{
    return done(reason, bytes, XDP_PASS);
}

/* ---- config and addresses ------------------------------------------------------------------------ */

static __always_inline int addr_eq(const __u32 a[4], const __u32 b[4])
{
    return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

static __always_inline int addr_zero(const __u32 a[4])
{
    return !(a[0] | a[1] | a[2] | a[3]);
}

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
    if ((c->families & RELAY_HAS_IPV6) && addr_zero((const __u32 *)c->iface_ipv6))
        return 0;
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

/* Whether a (validated, non-zero) address is one of the relay's addresses of its family: the public
 * address (unless zero, "none") or the interface address, compared in place in the config. */
static __always_inline int is_relay_addr(const struct relay_config *c, __u8 family, const __u32 a[4])
{
    if (family == RELAY_FAMILY_IPV4)
        return !(a[1] | a[2] | a[3]) &&
               ((c->public_ipv4 && a[0] == c->public_ipv4) || a[0] == c->iface_ipv4);
    const __u32 *pub = (const __u32 *)c->public_ipv6;
    return (!addr_zero(pub) && addr_eq(a, pub)) || addr_eq(a, (const __u32 *)c->iface_ipv6);
}

/* The relay's interface address of a family, the source of everything it emits. */
static __always_inline void iface_addr(const struct relay_config *c, __u8 family, __u32 a[4])
{
    if (family == RELAY_FAMILY_IPV4) {
        a[0] = c->iface_ipv4;
        a[1] = a[2] = a[3] = 0;
    } else {
        __builtin_memcpy(a, c->iface_ipv6, 16);
    }
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
    return family_enabled(c, ch->family) && ch->port && n >= CHANNEL_MIN && n <= CHANNEL_MAX &&
           addr_valid(ch->family, (const __u32 *)ch->addr);
}

/* A peer route read from a map is usable: available family, well-formed address, peer port, and an
 * allocation port of this relay. */
static __always_inline int peer_route_valid(const struct relay_config *c, const struct relay_peer *r)
{
    return family_enabled(c, r->family) && addr_valid(r->family, (const __u32 *)r->addr) && r->port &&
           port_in_range(c, r->alloc_port);
}

/* ---- what is read and what is written ------------------------------------------------------------ */

/* Everything read from the input frame; network byte order unless noted. */
struct relay_in {
    __u32 saddr[4];     /* 16-byte map form */
    __u32 daddr[4];
    __u16 eth_dst[3];   /* Ethernet addresses as 16-bit words, see parse_headers */
    __u16 eth_src[3];
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
    __u8 to_listen;     /* sent to the listen port: ChannelData from a client, or not relayed */
};

/* The datagram to emit. */
struct relay_out {
    __u32 saddr[4];
    __u32 daddr[4];
    __be16 sport;
    __be16 dport;
    __be16 channel;     /* when has_cd */
    __be16 udp_check;
    __u16 payload_len;  /* host order: what follows the UDP (and ChannelData) header */
    __u16 udp_len;      /* host order: UDP header, ChannelData header, payload */
    __u8 family;
    __u8 has_cd;
    __u8 l3_len;        /* 20 or 40 */
    __u8 stat;          /* RELAY_STAT_TO_PEER, _TO_CLIENT or _HAIRPIN: counted when sent */
};

/* ---- phase 1: parse; Ethernet, IPv4 or IPv6, UDP ------------------------------------------------- */

static __always_inline __u32 parse_ipv4(struct iphdr *ip, void *data_end, struct relay_in *in,
                                        struct udphdr **udp, __u32 *ip_payload_len)
{
    if ((void *)(ip + 1) > data_end)
        return RELAY_STAT_PASS_MALFORMED;
    if (ip->version != IP4_VERSION)
        return RELAY_STAT_PASS_MALFORMED;
    if (ip->ihl != IP4_IHL_NO_OPTIONS)
        return RELAY_STAT_PASS_IP_OPTIONS;
    if (ip->frag_off & bpf_htons(IP_MF_ | IP_OFFSET_))
        return RELAY_STAT_PASS_FRAGMENT;
    if (ip->protocol != IPPROTO_UDP)
        return RELAY_STAT_PASS_NOT_UDP;
    __u32 tot_len = bpf_ntohs(ip->tot_len);
    if (tot_len < IP4_HLEN + UDP_HLEN || (void *)ip + tot_len > data_end)
        return RELAY_STAT_PASS_MALFORMED;
    /* A header with a bad checksum would be dropped by the stack: do not launder it. */
    if (fold64(ipv4_header_sum(ip)) != CSUM_VALID)
        return RELAY_STAT_PASS_MALFORMED;
    in->family = RELAY_FAMILY_IPV4;
    in->saddr[0] = ip->saddr;
    in->daddr[0] = ip->daddr;
    in->tos = ip->tos;
    in->ttl = ip->ttl;
    in->ip_id = ip->id;
    in->frag_off = ip->frag_off & bpf_htons(IP_DF_);
    in->l3_len = IP4_HLEN;
    *ip_payload_len = tot_len - IP4_HLEN;
    *udp = (void *)(ip + 1);
    return RELAY_CONTINUE;
}

static __always_inline __u32 parse_ipv6(struct ipv6hdr *ip6, void *data_end, struct relay_in *in,
                                        struct udphdr **udp, __u32 *ip_payload_len)
{
    if ((void *)(ip6 + 1) > data_end)
        return RELAY_STAT_PASS_MALFORMED;
    if (ip6->version != IP6_VERSION)
        return RELAY_STAT_PASS_MALFORMED;
    switch (ip6->nexthdr) {
    case IPPROTO_UDP:
        break;
    case IPPROTO_FRAGMENT:
        return RELAY_STAT_PASS_FRAGMENT;
    case IPPROTO_HOPOPTS:
    case IPPROTO_ROUTING:
    case IPPROTO_DSTOPTS:
    case IPPROTO_AH:
    case IPPROTO_ESP:
    case IPPROTO_MH:
    case IP6_NEXTHDR_HIP:
    case IP6_NEXTHDR_SHIM6:
    case IP6_NEXTHDR_EXPERIMENT1:
    case IP6_NEXTHDR_EXPERIMENT2:
        return RELAY_STAT_PASS_IP_OPTIONS;
    default:
        return RELAY_STAT_PASS_NOT_UDP;
    }
    __u32 payload_len = bpf_ntohs(ip6->payload_len);
    if ((void *)(ip6 + 1) + payload_len > data_end)
        return RELAY_STAT_PASS_MALFORMED;
    in->family = RELAY_FAMILY_IPV6;
    __builtin_memcpy(in->saddr, &ip6->saddr, 16);
    __builtin_memcpy(in->daddr, &ip6->daddr, 16);
    in->tos = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
    in->ttl = ip6->hop_limit;
    in->l3_len = IP6_HLEN;
    *ip_payload_len = payload_len;
    *udp = (void *)(ip6 + 1);
    return RELAY_CONTINUE;
}

static __always_inline __u32 parse_udp(struct udphdr *udp, void *data_end, __u32 ip_payload_len,
                                       struct relay_in *in)
{
    if ((void *)(udp + 1) > data_end)
        return RELAY_STAT_PASS_MALFORMED;
    __u32 udp_len = bpf_ntohs(udp->len);
    if (udp_len < UDP_HLEN || udp_len != ip_payload_len)
        return RELAY_STAT_PASS_MALFORMED;
    /* UDP checksum 0 is "none" in IPv4 and invalid in IPv6 (the stack drops it). */
    if (in->family == RELAY_FAMILY_IPV6 && udp->check == UDP_CSUM_NONE)
        return RELAY_STAT_PASS_MALFORMED;
    in->sport = udp->source;
    in->dport = udp->dest;
    in->udp_len = udp->len;
    in->udp_check = udp->check;
    in->payload_len = udp_len - UDP_HLEN;
    return RELAY_CONTINUE;
}

/* Reads the headers into `in` and returns the UDP header, which parse_channeldata continues from. */
static __always_inline __u32 parse_headers(void *data, void *data_end, struct relay_in *in,
                                           struct udphdr **udp)
{
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return RELAY_STAT_PASS_NOT_IP;
    /* As 16-bit words (aligned, as the verifier counts it): a byte-wise copy, what memcpy of the
     * packed ethhdr becomes, takes three times the instructions. */
    const __u16 *w = data;
    in->eth_dst[0] = w[0];
    in->eth_dst[1] = w[1];
    in->eth_dst[2] = w[2];
    in->eth_src[0] = w[3];
    in->eth_src[1] = w[4];
    in->eth_src[2] = w[5];
    __be16 proto = w[6];

    __u32 ip_payload_len, r;
    if (proto == bpf_htons(ETH_P_IP))
        r = parse_ipv4((void *)(eth + 1), data_end, in, udp, &ip_payload_len);
    else if (proto == bpf_htons(ETH_P_IPV6))
        r = parse_ipv6((void *)(eth + 1), data_end, in, udp, &ip_payload_len);
    else
        return RELAY_STAT_PASS_NOT_IP;
    if (r != RELAY_CONTINUE)
        return r;
    return parse_udp(*udp, data_end, ip_payload_len, in);
}

/* ---- phase 2: classify; is it for the relay, and from a client or from a peer -------------------- */

static __always_inline __u32 classify(const struct relay_config *cfg, struct relay_in *in)
{
    /* Both sides of every port and address comparison are in network byte order. */
    if (!family_enabled(cfg, in->family) || !is_relay_addr(cfg, in->family, in->daddr))
        return RELAY_STAT_PASS_NOT_RELAY_ADDR;
    in->to_listen = in->dport == cfg->listen_port;
    if (!in->to_listen && !port_in_range(cfg, in->dport))
        return RELAY_STAT_PASS_NOT_RELAY_PORT;
    if (in->sport == 0 || in->sport == bpf_htons(DNS_PORT))
        return RELAY_STAT_PASS_SRC_PORT;
    return RELAY_CONTINUE;
}

/* What arrives on the listen port is relayed only if it is ChannelData of exactly the UDP payload's
 * length; STUN and everything else goes up. */
static __always_inline __u32 parse_channeldata(const struct udphdr *udp, void *data_end,
                                               struct relay_in *in)
{
    const __u8 *p = (const void *)(udp + 1);
    if (in->payload_len < 1)
        return RELAY_STAT_PASS_NOT_CHANNELDATA;
    if ((void *)(p + 1) > data_end)
        return RELAY_STAT_PASS_MALFORMED;
    if (p[0] <= STUN_FIRST_BYTE_MAX)
        return RELAY_STAT_PASS_STUN;
    if (p[0] < (CHANNEL_MIN >> 8) || p[0] > (CHANNEL_MAX >> 8))
        return RELAY_STAT_PASS_NOT_CHANNELDATA;
    if (in->payload_len < CD_HLEN)
        return RELAY_STAT_PASS_CD_LENGTH;
    if ((void *)(p + CD_HLEN) > data_end)
        return RELAY_STAT_PASS_MALFORMED;
    in->cd_channel = *(const __be16 *)p;
    in->cd_len = *(const __be16 *)(p + 2);
    /* Exact match: padded ChannelData (length < payload - 4) goes up like any mismatch. */
    if (bpf_ntohs(in->cd_len) != in->payload_len - CD_HLEN)
        return RELAY_STAT_PASS_CD_LENGTH;
    in->has_cd = 1;
    return RELAY_CONTINUE;
}

/* ---- phase 3: route; one direction each ---------------------------------------------------------- */

/*
 * One consistent copy of a route map value (user space may update the entry meanwhile) into an
 * 8-byte-aligned local, taken as three 8-byte words: map values are 8-byte aligned, and a field-wise
 * copy of these 2-byte-aligned structs takes three times the instructions.
 */
#define RELAY_ROUTE_COPY(dst, src) \
    __builtin_memcpy(&(dst), __builtin_assume_aligned((src), 8), sizeof(dst))

/* Output as ChannelData to a client found in relay_to_client (peer -> client, hairpin). */
static __always_inline __u32 route_to_channel(const struct relay_config *cfg,
                                              const struct relay_channel *found, __u8 stat,
                                              struct relay_out *out)
{
    struct relay_channel client __attribute__((aligned(8)));
    RELAY_ROUTE_COPY(client, found);
    if (!channel_valid(cfg, &client))
        return RELAY_STAT_PASS_UNSAFE;
    out->family = client.family;
    __builtin_memcpy(out->daddr, client.addr, 16);
    out->sport = cfg->listen_port;
    out->dport = client.port;
    out->channel = client.channel;
    out->has_cd = 1;
    out->stat = stat;
    return RELAY_CONTINUE;
}

/* Hairpin: the peer is another allocation on this relay. Its reverse route is keyed by (this relay's
 * address, this allocation's port as the peer port, its own port). */
static __always_inline __u32 route_hairpin(const struct relay_config *cfg,
                                           const struct relay_peer *route, struct relay_out *out)
{
    if (!port_in_range(cfg, route->port))
        return RELAY_STAT_PASS_NO_ROUTE;
    struct relay_peer rkey = {};
    rkey.family = route->family;
    rkey.port = route->alloc_port;
    rkey.alloc_port = route->port;
    __builtin_memcpy(rkey.addr, route->addr, 16);
    const struct relay_channel *other = bpf_map_lookup_elem(&relay_to_client, &rkey);
    if (!other) {
        /* The other client may have bound the relay's other address of this family (public vs
         * interface). */
        __u32 pub[4], ifc[4];
        relay_addrs(cfg, route->family, pub, ifc);
        if (addr_eq((__u32 *)rkey.addr, ifc))
            __builtin_memcpy(rkey.addr, pub, 16);
        else
            __builtin_memcpy(rkey.addr, ifc, 16);
        if (!addr_zero((__u32 *)rkey.addr))
            other = bpf_map_lookup_elem(&relay_to_client, &rkey);
    }
    if (!other)
        return RELAY_STAT_PASS_NO_ROUTE;
    return route_to_channel(cfg, other, RELAY_STAT_HAIRPIN, out);
}

/* Client -> relay: (client, channel) -> peer, or another client of this relay. */
static __always_inline __u32 route_from_client(const struct relay_config *cfg,
                                               const struct relay_in *in, struct relay_out *out)
{
    struct relay_channel key = {};
    key.family = in->family;
    key.port = in->sport;
    key.channel = in->cd_channel;
    __builtin_memcpy(key.addr, in->saddr, 16);
    const struct relay_peer *found = bpf_map_lookup_elem(&relay_to_peer, &key);
    if (!found)
        return RELAY_STAT_PASS_NO_ROUTE;
    struct relay_peer route __attribute__((aligned(8)));
    RELAY_ROUTE_COPY(route, found);
    if (!peer_route_valid(cfg, &route))
        return RELAY_STAT_PASS_UNSAFE;
    if (is_relay_addr(cfg, route.family, (__u32 *)route.addr))
        return route_hairpin(cfg, &route, out);
    out->family = route.family;
    __builtin_memcpy(out->daddr, route.addr, 16);
    out->sport = route.alloc_port;
    out->dport = route.port;
    out->has_cd = 0;
    out->stat = RELAY_STAT_TO_PEER;
    return RELAY_CONTINUE;
}

/* Peer -> relay: (peer, allocation port) -> client and channel. */
static __always_inline __u32 route_from_peer(const struct relay_config *cfg, const struct relay_in *in,
                                             struct relay_out *out)
{
    struct relay_peer key = {};
    key.family = in->family;
    key.port = in->sport;
    key.alloc_port = in->dport;
    __builtin_memcpy(key.addr, in->saddr, 16);
    const struct relay_channel *found = bpf_map_lookup_elem(&relay_to_client, &key);
    if (!found)
        return RELAY_STAT_PASS_NO_ROUTE;
    return route_to_channel(cfg, found, RELAY_STAT_TO_CLIENT, out);
}

/* ---- phase 4: plan the output; source address, TTL, sizes ---------------------------------------- */

static __always_inline __u32 plan_output(const struct relay_config *cfg, const struct relay_in *in,
                                         struct relay_out *out)
{
    iface_addr(cfg, out->family, out->saddr);
    if (in->ttl <= 1)
        return RELAY_STAT_PASS_TTL;
    __u32 payload_len = in->payload_len - (in->has_cd ? CD_HLEN : 0);
    __u32 l3_len = out->family == RELAY_FAMILY_IPV4 ? IP4_HLEN : IP6_HLEN;
    __u32 udp_len = UDP_HLEN + (out->has_cd ? CD_HLEN : 0) + payload_len;
    __u32 mtu = cfg->mtu ? bpf_ntohs(cfg->mtu) : DEFAULT_MTU;
    if (l3_len + udp_len > mtu || udp_len > UDP_LEN_MAX)
        return RELAY_STAT_PASS_TOO_BIG;
    out->payload_len = payload_len;
    out->l3_len = l3_len;
    out->udp_len = udp_len;
    return RELAY_CONTINUE;
}

/* ---- phase 5: the output's UDP checksum ---------------------------------------------------------- */

static __always_inline __u32 udp_checksum(struct xdp_md *ctx, const struct relay_config *cfg,
                                          const struct relay_in *in, struct relay_out *out)
{
    __u64 new_sum = udp_header_terms(out->saddr, out->daddr, bpf_htons(out->udp_len), out->sport,
                                     out->dport, out->has_cd, out->channel, bpf_htons(out->payload_len));
    if (in->udp_check == UDP_CSUM_NONE) {
        /* IPv4 input without checksum (IPv6 inputs without one were passed up): IPv4 keeps none,
         * IPv6 must have one, summed over the payload. */
        if (out->family == RELAY_FAMILY_IPV4) {
            out->udp_check = UDP_CSUM_NONE;
            return RELAY_CONTINUE;
        }
        __u32 off = ETH_HLEN + in->l3_len + UDP_HLEN + (in->has_cd ? CD_HLEN : 0);
        int psum = relay_payload_sum(ctx, off, out->payload_len);
        if (psum < 0)
            return RELAY_STAT_PASS_UNSAFE;
        out->udp_check = csum_field(fold64(new_sum + (__u32)psum));
        return RELAY_CONTINUE;
    }
    if (out->family == RELAY_FAMILY_IPV4 && cfg->checksum_mode == RELAY_CSUM_V4_ZERO) {
        out->udp_check = UDP_CSUM_NONE;
        return RELAY_CONTINUE;
    }
    /* Incremental (RFC 1624, eqn. 3): check' = ~(~check + ~old terms + new terms), the payload's
     * share carried over from the input's checksum. A corrupted input therefore stays detectably
     * corrupted. */
    __u64 old_sum = udp_header_terms(in->saddr, in->daddr, in->udp_len, in->sport, in->dport,
                                     in->has_cd, in->cd_channel, in->cd_len);
    __u64 sum = (~(__u32)in->udp_check & 0xffff) + (CSUM_ZERO48 - old_sum) + new_sum;
    out->udp_check = csum_field(fold64(sum));
    return RELAY_CONTINUE;
}

/* ---- phase 6: rewrite; one head adjust, then every header written afresh in front of the payload --- */

/* Back to the router it came from: the Ethernet addresses swapped. */
static __always_inline void write_eth(struct ethhdr *eth, const struct relay_in *in, __be16 proto)
{
    __u16 *w = (__u16 *)eth;
    w[0] = in->eth_src[0];
    w[1] = in->eth_src[1];
    w[2] = in->eth_src[2];
    w[3] = in->eth_dst[0];
    w[4] = in->eth_dst[1];
    w[5] = in->eth_dst[2];
    w[6] = proto;
}

static __always_inline void write_ipv4(struct iphdr *ip, const struct relay_in *in,
                                       const struct relay_out *out)
{
    *(__u8 *)ip = IP4_VERSION_IHL;
    ip->tos = in->tos;
    ip->tot_len = bpf_htons(IP4_HLEN + out->udp_len);
    if (in->family == RELAY_FAMILY_IPV4) {
        ip->id = in->ip_id;
        ip->frag_off = in->frag_off;
    } else {
        ip->id = 0;
        ip->frag_off = bpf_htons(IP_DF_);
    }
    ip->ttl = in->ttl - 1;
    ip->protocol = IPPROTO_UDP;
    ip->check = 0;
    ip->saddr = out->saddr[0];
    ip->daddr = out->daddr[0];
    ip->check = ~fold64(ipv4_header_sum(ip)) & 0xffff;
}

static __always_inline void write_ipv6(struct ipv6hdr *ip6, const struct relay_in *in,
                                       const struct relay_out *out)
{
    /* version 6, traffic class, flow label 0 */
    *(__be32 *)ip6 = bpf_htonl(((__u32)IP6_VERSION << IP6_VERSION_SHIFT) |
                               ((__u32)in->tos << IP6_TCLASS_SHIFT));
    ip6->payload_len = bpf_htons(out->udp_len);
    ip6->nexthdr = IPPROTO_UDP;
    ip6->hop_limit = in->ttl - 1;
    __builtin_memcpy(&ip6->saddr, out->saddr, 16);
    __builtin_memcpy(&ip6->daddr, out->daddr, 16);
}

/* The UDP header and, for a client, the ChannelData header; `cd` is known to fit when has_cd. */
static __always_inline void write_udp(struct udphdr *udp, __u8 *cd, int has_cd,
                                      const struct relay_out *out)
{
    udp->source = out->sport;
    udp->dest = out->dport;
    udp->len = bpf_htons(out->udp_len);
    udp->check = out->udp_check;
    if (has_cd) {
        *(__be16 *)cd = out->channel;
        *(__be16 *)(cd + 2) = bpf_htons(out->payload_len);
    }
}

/* Whether the frame holds the output's UDP header and, when there is one, its ChannelData header. */
static __always_inline int headers_fit(const __u8 *cd, void *data_end, int has_cd)
{
    if ((void *)cd > data_end)
        return 0;
    if (has_cd && (void *)(cd + CD_HLEN) > data_end)
        return 0;
    return 1;
}

/* Writes all headers of the output; 0, with nothing written, if the frame is too short for them. */
static __always_inline int write_headers(void *data, void *data_end, const struct relay_in *in,
                                         const struct relay_out *out)
{
    /* Read once: the verifier ties the ChannelData bounds check to the writes through this value
     * (`out` lives in memory, and the packet writes in between could alias it for the compiler). */
    int has_cd = out->has_cd;
    struct ethhdr *eth = data;
    if (out->family == RELAY_FAMILY_IPV4) {
        struct iphdr *ip = (void *)(eth + 1);
        struct udphdr *udp = (void *)(ip + 1);
        __u8 *cd = (void *)(udp + 1);
        if (!headers_fit(cd, data_end, has_cd))
            return 0;
        write_eth(eth, in, bpf_htons(ETH_P_IP));
        write_ipv4(ip, in, out);
        write_udp(udp, cd, has_cd, out);
    } else {
        struct ipv6hdr *ip6 = (void *)(eth + 1);
        struct udphdr *udp = (void *)(ip6 + 1);
        __u8 *cd = (void *)(udp + 1);
        if (!headers_fit(cd, data_end, has_cd))
            return 0;
        write_eth(eth, in, bpf_htons(ETH_P_IPV6));
        write_ipv6(ip6, in, out);
        write_udp(udp, cd, has_cd, out);
    }
    return 1;
}

static __always_inline int relay_rewrite(struct xdp_md *ctx, const struct relay_in *in,
                                         const struct relay_out *out, __u64 bytes)
{
    int delta = (int)(in->l3_len + (in->has_cd ? CD_HLEN : 0)) -
                (int)(out->l3_len + (out->has_cd ? CD_HLEN : 0));
    if (delta && bpf_xdp_adjust_head(ctx, delta))
        return pass(RELAY_STAT_PASS_UNSAFE, bytes); /* nothing changed yet */

    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    if (write_headers(data, data_end, in, out))
        return done(out->stat, bytes, XDP_TX);

    /* Unreachable (the frame holds the input headers, so it holds the output headers), but the
     * verifier wants the check: no byte was written, move the head back and pass the frame up. */
    if (delta && bpf_xdp_adjust_head(ctx, -delta))
        return done(RELAY_STAT_DROPPED, bytes, XDP_DROP);
    return pass(RELAY_STAT_PASS_UNSAFE, bytes);
}

/* ---- the program --------------------------------------------------------------------------------- */

/*
 * Keeps a local struct in its stack slot. Split into scalars, which clang does with a struct it sees
 * whole, `in` and `out` would have their initial zeros carried along every early return as register
 * moves and spills: 795 instead of 609 instructions run for a relayed IPv4 ChannelData frame (counted
 * on the bytecode). In memory each field is one store, and a load where it is used.
 */
#define RELAY_KEEP_IN_MEMORY(p) asm volatile("" : : "r"(p) : "memory")

SEC("xdp")
int gatehouse_relay_xdp(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    __u64 bytes = (__u64)(data_end - data);
    __u32 zero = 0;

    const struct relay_config *cfg = bpf_map_lookup_elem(&relay_config, &zero);
    if (!cfg || !config_valid(cfg))
        return pass(RELAY_STAT_PASS_NOT_CONFIGURED, bytes);

    struct relay_in in = {};
    struct relay_out out = {};
    RELAY_KEEP_IN_MEMORY(&in);
    RELAY_KEEP_IN_MEMORY(&out);

    struct udphdr *udp = NULL;
    __u32 r = parse_headers(data, data_end, &in, &udp);
    if (r != RELAY_CONTINUE)
        return pass(r, bytes);
    r = classify(cfg, &in);
    if (r != RELAY_CONTINUE)
        return pass(r, bytes);
    if (in.to_listen) {
        r = parse_channeldata(udp, data_end, &in);
        if (r != RELAY_CONTINUE)
            return pass(r, bytes);
        r = route_from_client(cfg, &in, &out);
    } else {
        r = route_from_peer(cfg, &in, &out);
    }
    if (r != RELAY_CONTINUE)
        return pass(r, bytes);
    r = plan_output(cfg, &in, &out);
    if (r != RELAY_CONTINUE)
        return pass(r, bytes);
    r = udp_checksum(ctx, cfg, &in, &out);
    if (r != RELAY_CONTINUE)
        return pass(r, bytes);
    return relay_rewrite(ctx, &in, &out, bytes);
}

char LICENSE[] SEC("license") = "GPL";

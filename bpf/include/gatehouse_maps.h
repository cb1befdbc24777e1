/*
 * The one definition of every layout Gatehouse shares with the kernel.
 *
 * Included by the BPF programs (bpf/NAME.bpf.c, compiled with clang -target bpf) and imported by Swift
 * through the `BPFMaps` C module, so kernel and user space cannot disagree on a layout. Rules:
 *   - multi-byte fields that are compared with packet fields are in network byte order (__be16,
 *     __be32) and say so in their type; user space converts explicitly;
 *   - no implicit padding: every struct spells its padding out, so that a key built in Swift has
 *     defined bytes everywhere (hash lookups compare whole keys); layouts.c asserts the sizes;
 *   - an array map slot always exists and reads as zeros until written, so every config struct has a
 *     `configured` marker that user space sets on every write: all zeros means "not configured" and
 *     the kernel falls back to passing packets up.
 */
#ifndef GATEHOUSE_MAPS_H
#define GATEHOUSE_MAPS_H

#include <linux/types.h>

/* ---- counter: the foundation's test program (bpf/counter.bpf.c) ----------------------------- */

/* Key 0 of the `counter_config` array map. */
struct counter_config {
    __u8 configured;  /* 1 once user space wrote a config; 0 (a never-written slot) = not configured */
    __u8 pad0;
    __be16 udp_port;  /* count UDP datagrams to this destination port, network byte order */
    __u32 pad1;
};

/* Indexes of the `counter_stats` per-CPU array map. */
enum counter_reason {
    COUNTER_MATCHED = 0,        /* UDP to the configured port */
    COUNTER_NOT_CONFIGURED = 1, /* the config slot is still all zeros */
    COUNTER_OTHER = 2,          /* anything else (not IPv4/IPv6 UDP, or another port) */
    COUNTER_REASON_COUNT = 3,
};

/* Value of `counter_stats` (per CPU) and of `counter_flows`. */
struct counter_stats {
    __u64 packets;
    __u64 bytes;
};

/* Key of the `counter_flows` LRU hash map: one entry per IPv4 UDP flow to the configured port. */
struct counter_flow_key {
    __be32 saddr;
    __be32 daddr;
    __be16 sport;
    __be16 dport;
    __u32 pad;
};

/* ---- relay: TURN ChannelData fast path (bpf/relay.bpf.c) ------------------------------------- */

/*
 * Address families as stored in the relay maps (not AF_INET/AF_INET6, so that the value means the
 * same thing on every platform). Any other value makes the kernel pass the packet up.
 */
#define RELAY_FAMILY_IPV4 4
#define RELAY_FAMILY_IPV6 6

/* relay_config.families: which address families the relay has an interface address for. */
#define RELAY_HAS_IPV4 0x01
#define RELAY_HAS_IPV6 0x02

/* relay_config.configured: the only value that means "configured". */
#define RELAY_CONFIGURED 1

/*
 * relay_config.checksum_mode:
 *   RELAY_CSUM_UPDATE  (0, the default) every rewritten datagram carries a correct UDP checksum,
 *                      updated incrementally from the input checksum (so a corrupted input stays
 *                      detectably corrupted); an IPv4 input with UDP checksum 0 keeps 0 when the
 *                      output is IPv4, and gets a checksum computed over the whole payload when the
 *                      output is IPv6 (passed up if the payload is too long to sum in the kernel);
 *   RELAY_CSUM_V4_ZERO (1) IPv4 outputs carry UDP checksum 0 ("not computed", legal in IPv4); IPv6
 *                      outputs are handled as in RELAY_CSUM_UPDATE (mandatory, never 0).
 * Any other value is an invalid config: the kernel passes everything up.
 */
#define RELAY_CSUM_UPDATE 0
#define RELAY_CSUM_V4_ZERO 1

/*
 * Key 0 of the `relay_config` array map (1 slot). User space writes the whole struct every time it
 * applies a config, defaults included. The kernel relays only when configured == RELAY_CONFIGURED,
 * checksum_mode is known, families != 0, listen_port != 0, 0 < port_min <= port_max, and every
 * family in `families` has a non-zero interface address; otherwise it passes everything up.
 * Ports and addresses are in network byte order (the kernel converts the port range and mtu with
 * bpf_ntohs to compare them as numbers). A public address of zero means "none" (only the interface
 * address is the relay's); the public address is accepted as a destination (1:1 NAT and hairpin) and
 * recognised in routes (hairpin); the interface address is the source of every emitted datagram.
 */
struct relay_config {
    __u8 configured;     /* RELAY_CONFIGURED once user space wrote a config; 0 = not configured */
    __u8 checksum_mode;  /* RELAY_CSUM_* */
    __u8 families;       /* RELAY_HAS_IPV4 | RELAY_HAS_IPV6 */
    __u8 pad0;
    __be16 listen_port;  /* TURN listen port (ChannelData from clients arrives here), e.g. 3478 */
    __be16 port_min;     /* allocation (relayed) port range, inclusive */
    __be16 port_max;
    __be16 mtu;          /* largest IP packet (IP header included) the kernel may emit; 0 = 1500 */
    __be32 public_ipv4;  /* advertised IPv4 address, 0 = none */
    __be32 iface_ipv4;   /* IPv4 address of the XDP interface, source of emitted IPv4 datagrams */
    __u8 public_ipv6[16];
    __u8 iface_ipv6[16];
};

/*
 * Addresses in the route maps are 16 bytes for both families: an IPv6 address as is; an IPv4
 * address in bytes 0-3 (network byte order) followed by 12 zero bytes ("zero-padded", NOT the
 * IPv4-mapped ::ffff:a.b.c.d form). The family byte says which. Keys are compared as whole bytes:
 * every pad field and unused address byte must be zero.
 */

/*
 * A client's channel: key of `relay_to_peer` (client -> peer direction) and value of
 * `relay_to_client` (peer -> client direction).
 */
struct relay_channel {
    __u8 family;         /* RELAY_FAMILY_* of the client address */
    __u8 pad0;
    __be16 port;         /* client's UDP port (as seen by the relay) */
    __be16 channel;      /* channel number, 0x4000-0x7FFF, network byte order as on the wire */
    __u16 pad1;
    __u8 addr[16];       /* client address (IPv4 zero-padded, see above) */
};

/*
 * A peer as reached through one allocation: value of `relay_to_peer` and key of `relay_to_client`.
 * The allocation's relayed address is the relay's interface address of the peer's family.
 */
struct relay_peer {
    __u8 family;         /* RELAY_FAMILY_* of the peer address */
    __u8 pad0;
    __be16 port;         /* peer's UDP port */
    __be16 alloc_port;   /* the allocation's relayed port */
    __u16 pad1;
    __u8 addr[16];       /* peer address (IPv4 zero-padded); the relay's own address for a hairpin */
};

/* Indexes of the `relay_stats` per-CPU array map; each counts packets and received frame bytes. */
enum relay_stat {
    RELAY_STAT_TO_PEER = 0,           /* ChannelData from a client relayed to its peer (XDP_TX) */
    RELAY_STAT_TO_CLIENT = 1,         /* datagram from a peer relayed to the client as ChannelData */
    RELAY_STAT_HAIRPIN = 2,           /* ChannelData relayed straight to another client of this relay */
    RELAY_STAT_PASS_NOT_CONFIGURED = 3, /* config slot zero or invalid */
    RELAY_STAT_PASS_NOT_IP = 4,       /* not IPv4/IPv6 (ARP, VLAN, ...) or truncated Ethernet header */
    RELAY_STAT_PASS_NOT_UDP = 5,      /* IP but another transport */
    RELAY_STAT_PASS_IP_OPTIONS = 6,   /* IPv4 with options (ihl != 5), IPv6 with extension headers */
    RELAY_STAT_PASS_FRAGMENT = 7,     /* IPv4 MF/offset, IPv6 fragment header */
    RELAY_STAT_PASS_MALFORMED = 8,    /* bad version, lengths, truncation, IPv6 UDP checksum 0 */
    RELAY_STAT_PASS_NOT_RELAY_ADDR = 9, /* destination is not one of the relay's addresses */
    RELAY_STAT_PASS_NOT_RELAY_PORT = 10, /* destination port is neither listen port nor in the range */
    RELAY_STAT_PASS_SRC_PORT = 11,    /* source port 0 or 53 */
    RELAY_STAT_PASS_STUN = 12,        /* STUN message (first byte 0x00-0x03) to the listen port */
    RELAY_STAT_PASS_NOT_CHANNELDATA = 13, /* other first byte, or empty datagram, to the listen port */
    RELAY_STAT_PASS_CD_LENGTH = 14,   /* ChannelData length field != UDP payload - 4 (padded, short) */
    RELAY_STAT_PASS_NO_ROUTE = 15,    /* no route (or no reverse route for a hairpin) */
    RELAY_STAT_PASS_TTL = 16,         /* TTL / hop limit would reach 0 */
    RELAY_STAT_PASS_TOO_BIG = 17,     /* output would exceed relay_config.mtu */
    RELAY_STAT_PASS_UNSAFE = 18,      /* cannot rewrite safely: family not available, bad route
                                         entry, checksum not computable, head adjust failed */
    RELAY_STAT_DROPPED = 19,          /* packet damaged by a failed rewrite and dropped (unreachable) */
    RELAY_STAT_COUNT = 20,
};

/* Value of `relay_stats` (per CPU). */
struct relay_stats {
    __u64 packets;
    __u64 bytes;
};

/* ---- gateway: per-client rules on the tunnel device (bpf/gateway.bpf.c) ---------------------- */

/*
 * Address families in rule keys (as for the relay: not AF_*). Addresses are 16 bytes for both
 * families: an IPv6 address as is, an IPv4 address in bytes 0-3 (network byte order) then 12 zeros.
 */
#define GATEWAY_FAMILY_IPV4 4
#define GATEWAY_FAMILY_IPV6 6

/*
 * Key of the `gateway_rules` LPM trie. The trie compares the first `prefixlen` bits of everything
 * after `prefixlen`: family and padding (32 bits) and the client's tunnel address (128 bits) always,
 * then the destination prefix's length. So prefixlen = GATEWAY_KEY_FIXED_BITS + destination prefix
 * length, and a lookup with a packet's source and destination (prefixlen = GATEWAY_KEY_FIXED_BITS +
 * 128) finds the longest destination prefix among that client's entries, or nothing when the source
 * is no client's. Bits past the prefix must be zero (user space writes them so).
 */
#define GATEWAY_KEY_FIXED_BITS 160
struct gateway_rule_key {
    __u32 prefixlen;
    __u8 family;           /* GATEWAY_FAMILY_* */
    __u8 pad[3];
    __u8 client[16];       /* the client's tunnel address */
    __u8 destination[16];  /* the destination prefix's network address */
};

/* gateway_rule.flags */
#define GATEWAY_RULE_CONFIGURED 0x80  /* set on every entry user space writes (all zeros = never written) */
#define GATEWAY_RULE_ALLOW_ALL 0x01   /* every protocol and port (a destination without filters) */
#define GATEWAY_RULE_ICMP 0x02        /* ICMP and ICMPv6 (protocols 1 and 58) */

/*
 * An entry with only GATEWAY_RULE_CONFIGURED (no ports) marks a known client whose packet found no
 * authorised destination: the prefix-0 entry every client has unless one of its resources is a /0.
 */
#define GATEWAY_PORT_RANGES 8

/* An inclusive port range, in host byte order (the kernel converts the packet's port to compare). */
struct gateway_port_range {
    __u16 low;
    __u16 high;
};

/* Value of `gateway_rules`: what packets from the client to the destination prefix may be. */
struct gateway_rule {
    __u8 flags;       /* GATEWAY_RULE_* */
    __u8 tcp_count;   /* ranges used in `tcp`, at most GATEWAY_PORT_RANGES */
    __u8 udp_count;
    __u8 pad;
    struct gateway_port_range tcp[GATEWAY_PORT_RANGES];
    struct gateway_port_range udp[GATEWAY_PORT_RANGES];
};

/* Indexes of the `gateway_stats` per-CPU array: what the program did with each packet and why. */
enum gateway_stat {
    GATEWAY_STAT_ALLOWED = 0,         /* a rule allows it: passed to the stack */
    GATEWAY_STAT_UNKNOWN_SOURCE = 1,  /* the source is no client's tunnel address */
    GATEWAY_STAT_NO_RULE = 2,         /* the destination is in none of the client's resources */
    GATEWAY_STAT_FILTERED = 3,        /* the resource's filters refuse the protocol or port */
    GATEWAY_STAT_MALFORMED = 4,       /* not IPv4/IPv6, bad version or lengths, truncated header */
    GATEWAY_STAT_COUNT = 5,
};

/* Value of `gateway_stats` (per CPU). */
struct gateway_stats {
    __u64 packets;
    __u64 bytes;
};

#endif /* GATEHOUSE_MAPS_H */

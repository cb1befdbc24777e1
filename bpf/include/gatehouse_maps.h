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

#endif /* GATEHOUSE_MAPS_H */

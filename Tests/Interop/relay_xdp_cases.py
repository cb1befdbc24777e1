#!/usr/bin/env python3
"""
Behaviour tests of relay.bpf.c (gatehouse_relay_xdp) through BPF_PROG_TEST_RUN.

Run as root:  .venv/bin/python Tests/Interop/relay_xdp_cases.py --object relay.bpf.o [-v]
(BPFTests' RelayXDPProgramTests runs it with the object the build embedded.)

It mounts a private temporary bpffs, loads the
program with bpftool (kernel verifier), pins its maps there, fills relay_config and the route maps with
`bpftool map update`, runs every case with `bpftool prog run`, and checks the return code, the output
frame byte for byte against an independently built expected frame, the IPv4 header and UDP checksums
(recomputed here, not by the program), and the relay_stats counter of the expected reason. Everything
it creates (pins, maps, program, mount) is removed at the end, also on failure.
"""
import ipaddress
import json
import os
import random
import struct
import subprocess
import sys
import tempfile

from scapy.all import (ARP, Dot1Q, Ether, ICMP, IP, IPOption_NOP, IPOption_EOL, IPv6,
                       IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, Raw, TCP, UDP)

# A private bpffs (mounted here, unmounted at the end) so nothing lands in /sys/fs/bpf.
BPFFS = tempfile.mkdtemp(prefix="gatehouse-xdp-cases-")
PROG = os.path.join(BPFFS, "gh_xdp_test")
MAPS = os.path.join(BPFFS, "maps")
OBJ = None  # --object PATH: the relay object as the build embedded it

XDP_DROP, XDP_PASS, XDP_TX = 1, 2, 3

# enum relay_stat (include/gatehouse_maps.h)
STATS = ["TO_PEER", "TO_CLIENT", "HAIRPIN", "PASS_NOT_CONFIGURED", "PASS_NOT_IP", "PASS_NOT_UDP",
         "PASS_IP_OPTIONS", "PASS_FRAGMENT", "PASS_MALFORMED", "PASS_NOT_RELAY_ADDR",
         "PASS_NOT_RELAY_PORT", "PASS_SRC_PORT", "PASS_STUN", "PASS_NOT_CHANNELDATA",
         "PASS_CD_LENGTH", "PASS_NO_ROUTE", "PASS_TTL", "PASS_TOO_BIG", "PASS_UNSAFE", "DROPPED"]

# ---- the relay under test -------------------------------------------------------------------------
PUB4, IFC4 = "203.0.113.10", "10.0.0.10"
PUB6, IFC6 = "2001:db8:ffff::10", "2001:db8:aaaa::10"
LISTEN, PMIN, PMAX = 3478, 49152, 65535
RELAY_MAC, ROUTER_MAC = "02:00:00:00:00:0a", "02:00:00:00:00:01"

C4, C4P = "198.51.100.20", 50000          # IPv4 client
C6, C6P = "2001:db8:c::20", 50001          # IPv6 client
P4, P4P = "192.0.2.30", 6000               # IPv4 peer
P6, P6P = "2001:db8:d::30", 6001           # IPv6 peer


def fam(addr):
    return 6 if ":" in addr else 4


def addr16(addr):
    """16-byte map form: IPv6 as is, IPv4 in bytes 0-3 followed by 12 zero bytes."""
    a = ipaddress.ip_address(addr)
    return a.packed if a.version == 6 else a.packed + bytes(12)


def be16(v):
    return struct.pack("!H", v)


def config_bytes(configured=1, mode=0, families=3, listen=LISTEN, pmin=PMIN, pmax=PMAX, mtu=0,
                 pub4=PUB4, ifc4=IFC4, pub6=PUB6, ifc6=IFC6):
    b = bytes([configured, mode, families, 0]) + be16(listen) + be16(pmin) + be16(pmax) + be16(mtu)
    b += ipaddress.IPv4Address(pub4).packed + ipaddress.IPv4Address(ifc4).packed
    b += ipaddress.IPv6Address(pub6).packed + ipaddress.IPv6Address(ifc6).packed
    assert len(b) == 52
    return b


def channel_bytes(addr, port, channel):  # struct relay_channel
    return bytes([fam(addr), 0]) + be16(port) + be16(channel) + bytes(2) + addr16(addr)


def peer_bytes(addr, port, alloc_port):  # struct relay_peer
    return bytes([fam(addr), 0]) + be16(port) + be16(alloc_port) + bytes(2) + addr16(addr)


# ---- bpftool plumbing ----------------------------------------------------------------------------
def sh(args, check=True):
    r = subprocess.run(args, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {r.stdout}{r.stderr}")
    return r


def hexargs(b):
    return [f"{x:02x}" for x in b]


def map_update(name, key, value):
    sh(["bpftool", "map", "update", "pinned", os.path.join(MAPS, name), "key", "hex", *hexargs(key),
        "value", "hex", *hexargs(value)])


def map_delete(name, key):
    sh(["bpftool", "map", "delete", "pinned", os.path.join(MAPS, name), "key", "hex", *hexargs(key)])


def set_config(**kw):
    map_update("relay_config", bytes(4), config_bytes(**kw))


def zero_config():
    map_update("relay_config", bytes(4), bytes(52))


def add_route(client, cport, channel, peer, pport, alloc, reverse=True):
    map_update("relay_to_peer", channel_bytes(client, cport, channel), peer_bytes(peer, pport, alloc))
    if reverse:
        map_update("relay_to_client", peer_bytes(peer, pport, alloc), channel_bytes(client, cport, channel))


def read_stats():
    out = json.loads(sh(["bpftool", "map", "dump", "pinned", os.path.join(MAPS, "relay_stats"), "-j"]).stdout)
    res = {}
    for e in out:
        k = e["formatted"]["key"]
        p = sum(v["value"]["packets"] for v in e["formatted"]["values"])
        b = sum(v["value"]["bytes"] for v in e["formatted"]["values"])
        res[STATS[k]] = (p, b)
    return res


def prog_run(frame):
    with tempfile.TemporaryDirectory() as d:
        fin, fout = os.path.join(d, "in"), os.path.join(d, "out")
        open(fin, "wb").write(frame)
        r = sh(["bpftool", "prog", "run", "pinned", PROG, "data_in", fin, "data_out", fout,
                "data_size_out", "16384"])
        rc = int(r.stdout.split("Return value:")[1].split(",")[0])
        return rc, open(fout, "rb").read()


# ---- independent checksum verification -------------------------------------------------------------
def ocsum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def udp_sum_without_checksum(frame):
    """One's complement sum of pseudo-header + UDP segment with the checksum field taken as 0."""
    etype = struct.unpack("!H", frame[12:14])[0]
    if etype == 0x0800:
        ip = frame[14:34]
        seg = bytearray(frame[34:14 + struct.unpack("!H", ip[2:4])[0]])
        pseudo = ip[12:20] + bytes([0, 17]) + be16(len(seg))
    else:
        ip = frame[14:54]
        seg = bytearray(frame[54:54 + struct.unpack("!H", ip[4:6])[0]])
        pseudo = ip[8:40] + struct.pack("!I", len(seg)) + bytes([0, 0, 0, 17])
    seg[6:8] = b"\0\0"
    return ocsum(bytes(pseudo) + bytes(seg))


def verify_checksums(frame):
    """Recomputes the IPv4 header and UDP checksums of an emitted frame; returns (ok, description)."""
    etype = struct.unpack("!H", frame[12:14])[0]
    if etype == 0x0800:
        ip = frame[14:34]
        if ip[0] != 0x45 or ocsum(ip) != 0xFFFF:
            return False, "IPv4 header checksum"
        tot = struct.unpack("!H", ip[2:4])[0]
        seg = frame[34:14 + tot]
        pseudo = ip[12:20] + bytes([0, 17]) + be16(len(seg))
        ck = struct.unpack("!H", seg[6:8])[0]
        if ck == 0:
            return True, "udp-none"
        return (ocsum(pseudo + seg) == 0xFFFF), "UDP/IPv4 checksum"
    if etype == 0x86DD:
        ip = frame[14:54]
        plen = struct.unpack("!H", ip[4:6])[0]
        seg = frame[54:54 + plen]
        pseudo = ip[8:40] + struct.pack("!I", len(seg)) + bytes([0, 0, 0, 17])
        ck = struct.unpack("!H", seg[6:8])[0]
        if ck == 0:
            return False, "UDP/IPv6 checksum 0"
        return (ocsum(pseudo + seg) == 0xFFFF), "UDP/IPv6 checksum"
    return False, "not IP"


# ---- frame builders ---------------------------------------------------------------------------------
def ip_layer(src, dst, ttl=64, tos=0, ident=0x1234, flags="DF"):
    if fam(src) == 4:
        return IP(src=src, dst=dst, ttl=ttl, tos=tos, id=ident, flags=flags)
    return IPv6(src=src, dst=dst, hlim=ttl, tc=tos)


def frame(src, sport, dst, dport, payload, ttl=64, tos=0, chksum=None, ident=0x1234, flags="DF"):
    u = UDP(sport=sport, dport=dport)
    if chksum is not None:
        u.chksum = chksum
    return bytes(Ether(src=ROUTER_MAC, dst=RELAY_MAC) / ip_layer(src, dst, ttl, tos, ident, flags) / u /
                 Raw(payload))


def cd(channel, payload, length=None, pad=0):
    return be16(channel) + be16(len(payload) if length is None else length) + payload + bytes(pad)


def expected(src, sport, dst, dport, payload, ttl, tos=0, in_family=4, ident=0x1234, zero_csum=False,
             flags="DF"):
    """The frame the relay must emit: Ethernet swapped, TTL - 1, scapy-computed checksums."""
    if fam(src) == 4:
        if in_family == 4:
            ipl = IP(src=src, dst=dst, ttl=ttl - 1, tos=tos, id=ident, flags=flags)
        else:
            ipl = IP(src=src, dst=dst, ttl=ttl - 1, tos=tos, id=0, flags="DF")
    else:
        ipl = IPv6(src=src, dst=dst, hlim=ttl - 1, tc=tos, fl=0)
    u = UDP(sport=sport, dport=dport)
    if zero_csum:
        u.chksum = 0
    return bytes(Ether(src=RELAY_MAC, dst=ROUTER_MAC) / ipl / u / Raw(payload))


# ---- test runner ------------------------------------------------------------------------------------
RESULTS = []
VERBOSE = "-v" in sys.argv


def case(name, frame_in, want_rc, want_stat, want_out=None, checksum_ok=True, extra=None):
    before = read_stats()
    rc, out = prog_run(frame_in)
    after = read_stats()
    problems = []
    if rc != want_rc:
        problems.append(f"rc {rc} != {want_rc}")
    delta = {k: (after[k][0] - before[k][0], after[k][1] - before[k][1]) for k in STATS}
    moved = {k: v for k, v in delta.items() if v != (0, 0)}
    if moved != {want_stat: (1, len(frame_in))}:
        problems.append(f"stats moved {moved}, want {{{want_stat}: (1, {len(frame_in)})}}")
    if want_rc == XDP_PASS and out != frame_in:
        problems.append("passed frame was modified")
    if want_out is not None and out != want_out:
        problems.append("output differs from expected")
        if VERBOSE:
            print("  got :", out.hex())
            print("  want:", want_out.hex())
            Ether(out).show2()
    if want_rc == XDP_TX:
        ok, what = verify_checksums(out)
        if ok != checksum_ok:
            problems.append(f"checksum check {what}: {'valid' if ok else 'INVALID'}, want "
                            f"{'valid' if checksum_ok else 'invalid'}")
    if extra:
        p = extra(out)
        if p:
            problems.append(p)
    RESULTS.append((name, not problems, problems))
    print(f"{'PASS' if not problems else 'FAIL'}  {name}" + ("" if not problems else f"  -> {problems}"))


def run_cases():
    set_config()
    # Routes: (client, client port, channel) <-> (peer, peer port, allocation port)
    add_route(C4, C4P, 0x4000, P4, P4P, 50000)        # v4 client <-> v4 peer
    add_route(C6, C6P, 0x4001, P6, P6P, 50001)        # v6 client <-> v6 peer
    add_route(C4, C4P, 0x4002, P6, P6P, 50002)        # v4 client <-> v6 peer (IPv6 relayed address)
    add_route(C6, C6P, 0x4003, P4, P4P, 50003)        # v6 client <-> v4 peer (IPv4 relayed address)
    add_route(C4, C4P, 0x7FFF, P4, 7000, 50004)       # highest channel number
    # Hairpins: A's peer is B's relayed address on this relay and vice versa.
    A4, A4P, B4, B4P = "198.51.100.40", 40000, "198.51.100.41", 40001
    add_route(A4, A4P, 0x4010, PUB4, 50021, 50020)    # A (alloc 50020) -> B's relayed (PUB4, 50021)
    add_route(B4, B4P, 0x4011, PUB4, 50020, 50021)    # B (alloc 50021) -> A's relayed (PUB4, 50020)
    A6, A6P, B4b, B4bP = "2001:db8:c::40", 40002, "198.51.100.42", 40003
    add_route(A6, A6P, 0x4012, PUB6, 50031, 50030)    # v6 client A (v6 alloc 50030) -> B's v6 relayed
    add_route(B4b, B4bP, 0x4013, PUB6, 50030, 50031)  # v4 client B with v6 relayed address 50031
    # A binds the interface address, B's reverse route is keyed by the public address (fallback lookup)
    add_route(A4, A4P, 0x4014, IFC4, 50041, 50040, reverse=False)
    add_route(B4, B4P, 0x4015, PUB4, 50040, 50041)
    # hairpin without the other side
    add_route(A4, A4P, 0x4016, PUB4, 50051, 50050, reverse=False)
    # bad route entries
    map_update("relay_to_peer", channel_bytes(C4, C4P, 0x4020),
               bytes([4, 0]) + be16(P4P) + be16(50060) + bytes(2) + bytes([1, 2, 3, 4, 5]) + bytes(11))
    add_route(C4, C4P, 0x4021, P4, P4P, 1000, reverse=False)  # allocation port outside the range

    rnd = random.Random(1234)

    def pl(n):
        return bytes(rnd.randrange(256) for _ in range(n))

    # ---- client -> peer ----
    for n in (0, 1, 37, 100, 1400):
        p = pl(n)
        case(f"v4 client -> v4 peer, payload {n}", frame(C4, C4P, IFC4, LISTEN, cd(0x4000, p), ttl=64, tos=0xb8),
             XDP_TX, "TO_PEER", expected(IFC4, 50000, P4, P4P, p, 64, tos=0xb8))
    for n in (1, 37, 100):
        p = pl(n)
        case(f"v6 client -> v6 peer, payload {n}", frame(C6, C6P, IFC6, LISTEN, cd(0x4001, p), ttl=60, tos=0x2e),
             XDP_TX, "TO_PEER", expected(IFC6, 50001, P6, P6P, p, 60, tos=0x2e))
    for n in (1, 37, 100, 1400):
        p = pl(n)
        case(f"v4 client -> v6 peer, payload {n}", frame(C4, C4P, IFC4, LISTEN, cd(0x4002, p)),
             XDP_TX, "TO_PEER", expected(IFC6, 50002, P6, P6P, p, 64))
    for n in (1, 37, 100):
        p = pl(n)
        case(f"v6 client -> v4 peer, payload {n}", frame(C6, C6P, IFC6, LISTEN, cd(0x4003, p)),
             XDP_TX, "TO_PEER", expected(IFC4, 50003, P4, P4P, p, 64, in_family=6))
    p = pl(33)
    case("v4 client -> v4 peer to the public address", frame(C4, C4P, PUB4, LISTEN, cd(0x4000, p)),
         XDP_TX, "TO_PEER", expected(IFC4, 50000, P4, P4P, p, 64))
    p = pl(21)
    case("v6 client -> v6 peer to the public address", frame(C6, C6P, PUB6, LISTEN, cd(0x4001, p)),
         XDP_TX, "TO_PEER", expected(IFC6, 50001, P6, P6P, p, 64))
    p = pl(9)
    case("channel 0x7FFF", frame(C4, C4P, IFC4, LISTEN, cd(0x7FFF, p)),
         XDP_TX, "TO_PEER", expected(IFC4, 50004, P4, 7000, p, 64))
    p = pl(5)
    case("v4 client -> v4 peer, Ethernet padding kept after the payload",
         frame(C4, C4P, IFC4, LISTEN, cd(0x4000, p)) + bytes(9),
         XDP_TX, "TO_PEER", expected(IFC4, 50000, P4, P4P, p, 64) + bytes(9))

    p = pl(29)
    case("v4 input without DF: id copied, DF stays clear", frame(C4, C4P, IFC4, LISTEN, cd(0x4000, p), ident=0xbeef,
                                                                flags=0),
         XDP_TX, "TO_PEER", expected(IFC4, 50000, P4, P4P, p, 64, ident=0xbeef, flags=0))
    case("DSCP/ECN carried v4 -> v6", frame(C4, C4P, IFC4, LISTEN, cd(0x4002, p), tos=0xb9),
         XDP_TX, "TO_PEER", expected(IFC6, 50002, P6, P6P, p, 64, tos=0xb9))
    case("traffic class carried v6 -> v4", frame(C6, C6P, IFC6, LISTEN, cd(0x4003, p), tos=0x2f, ttl=2),
         XDP_TX, "TO_PEER", expected(IFC4, 50003, P4, P4P, p, 2, tos=0x2f, in_family=6))

    # ---- peer -> client ----
    for n in (1, 37, 100, 1400):
        p = pl(n)
        case(f"v4 peer -> v4 client, payload {n}", frame(P4, P4P, IFC4, 50000, p, ttl=50, tos=0x10),
             XDP_TX, "TO_CLIENT", expected(IFC4, LISTEN, C4, C4P, cd(0x4000, p), 50, tos=0x10))
    for n in (0, 1, 37, 100):
        p = pl(n)
        case(f"v6 peer -> v6 client, payload {n}", frame(P6, P6P, IFC6, 50001, p),
             XDP_TX, "TO_CLIENT", expected(IFC6, LISTEN, C6, C6P, cd(0x4001, p), 64))
    for n in (1, 37, 100):
        p = pl(n)
        case(f"v6 peer -> v4 client, payload {n}", frame(P6, P6P, IFC6, 50002, p),
             XDP_TX, "TO_CLIENT", expected(IFC4, LISTEN, C4, C4P, cd(0x4002, p), 64, in_family=6))
    for n in (1, 37, 100, 1400):
        p = pl(n)
        case(f"v4 peer -> v6 client, payload {n}", frame(P4, P4P, IFC4, 50003, p),
             XDP_TX, "TO_CLIENT", expected(IFC6, LISTEN, C6, C6P, cd(0x4003, p), 64))
    p = pl(64)
    case("v4 peer -> v4 client via the public address", frame(P4, P4P, PUB4, 50000, p),
         XDP_TX, "TO_CLIENT", expected(IFC4, LISTEN, C4, C4P, cd(0x4000, p), 64))

    # ---- hairpin ----
    for n in (1, 37, 200):
        p = pl(n)
        case(f"hairpin v4 A -> v4 B, payload {n}", frame(A4, A4P, IFC4, LISTEN, cd(0x4010, p)),
             XDP_TX, "HAIRPIN", expected(IFC4, LISTEN, B4, B4P, cd(0x4011, p), 64))
    p = pl(77)
    case("hairpin v4 B -> v4 A (other way)", frame(B4, B4P, IFC4, LISTEN, cd(0x4011, p)),
         XDP_TX, "HAIRPIN", expected(IFC4, LISTEN, A4, A4P, cd(0x4010, p), 64))
    for n in (1, 38):
        p = pl(n)
        case(f"hairpin v6 A -> v4 B (v6 relayed addresses), payload {n}",
             frame(A6, A6P, IFC6, LISTEN, cd(0x4012, p)),
             XDP_TX, "HAIRPIN", expected(IFC4, LISTEN, B4b, B4bP, cd(0x4013, p), 64, in_family=6))
    p = pl(15)
    case("hairpin v4 B -> v6 A", frame(B4b, B4bP, IFC4, LISTEN, cd(0x4013, p)),
         XDP_TX, "HAIRPIN", expected(IFC6, LISTEN, A6, A6P, cd(0x4012, p), 64))
    p = pl(19)
    case("hairpin: route to interface address, reverse keyed by public address",
         frame(A4, A4P, IFC4, LISTEN, cd(0x4014, p)),
         XDP_TX, "HAIRPIN", expected(IFC4, LISTEN, B4, B4P, cd(0x4015, p), 64))
    case("hairpin without reverse route -> PASS", frame(A4, A4P, IFC4, LISTEN, cd(0x4016, pl(10))),
         XDP_PASS, "PASS_NO_ROUTE")

    # ---- checksum 0 on IPv4 input ----
    for n in (1, 37, 100):
        p = pl(n)
        case(f"csum0: v4 client -> v4 peer keeps 0, payload {n}",
             frame(C4, C4P, IFC4, LISTEN, cd(0x4000, p), chksum=0),
             XDP_TX, "TO_PEER", expected(IFC4, 50000, P4, P4P, p, 64, zero_csum=True),
             extra=lambda o: None if o[34 + 6:34 + 8] == b"\0\0" else "UDP checksum not 0")
        case(f"csum0: v4 client -> v6 peer computed, payload {n}",
             frame(C4, C4P, IFC4, LISTEN, cd(0x4002, p), chksum=0),
             XDP_TX, "TO_PEER", expected(IFC6, 50002, P6, P6P, p, 64))
        case(f"csum0: v4 peer -> v4 client keeps 0, payload {n}", frame(P4, P4P, IFC4, 50000, p, chksum=0),
             XDP_TX, "TO_CLIENT", expected(IFC4, LISTEN, C4, C4P, cd(0x4000, p), 64, zero_csum=True))
        case(f"csum0: v4 peer -> v6 client computed, payload {n}", frame(P4, P4P, IFC4, 50003, p, chksum=0),
             XDP_TX, "TO_CLIENT", expected(IFC6, LISTEN, C6, C6P, cd(0x4003, p), 64))
    p = pl(41)
    case("csum0: hairpin v4 -> v4 keeps 0", frame(A4, A4P, IFC4, LISTEN, cd(0x4010, p), chksum=0),
         XDP_TX, "HAIRPIN", expected(IFC4, LISTEN, B4, B4P, cd(0x4011, p), 64, zero_csum=True))
    p = pl(43)
    case("csum0: hairpin v4 B -> v6 A computed", frame(B4b, B4bP, IFC4, LISTEN, cd(0x4013, p), chksum=0),
         XDP_TX, "HAIRPIN", expected(IFC6, LISTEN, A6, A6P, cd(0x4012, p), 64))
    set_config(mtu=9000)
    for n in (3000, 3001):
        p = pl(n)
        case(f"csum0: v4 client -> v6 peer, {n}-byte payload (mtu 9000) computed",
             frame(C4, C4P, IFC4, LISTEN, cd(0x4002, p), chksum=0), XDP_TX, "TO_PEER",
             expected(IFC6, 50002, P6, P6P, p, 64))
    set_config()

    # ---- checksum edge values: payloads crafted so the output checksum is 0xFFFF (computed 0) ----
    for (src, sport, dst, dport, ch, osrc, osport, odst, odport, och, st, name) in (
            (C4, C4P, IFC4, LISTEN, 0x4000, IFC4, 50000, P4, P4P, None, "TO_PEER", "v4 client -> v4 peer"),
            (C4, C4P, IFC4, LISTEN, 0x4002, IFC6, 50002, P6, P6P, None, "TO_PEER", "v4 client -> v6 peer"),
            (P6, P6P, IFC6, 50002, None, IFC4, LISTEN, C4, C4P, 0x4002, "TO_CLIENT", "v6 peer -> v4 client"),
            (P4, P4P, IFC4, 50003, None, IFC6, LISTEN, C6, C6P, 0x4003, "TO_CLIENT", "v4 peer -> v6 client")):
        base = pl(20)

        def want_for(tail):
            q = base + be16(tail)
            return q, expected(osrc, osport, odst, odport, q if och is None else cd(och, q), 64,
                               in_family=fam(src), zero_csum=True)
        _, w0 = want_for(0)
        s0 = udp_sum_without_checksum(w0)
        tail = (0xFFFF - s0) & 0xFFFF      # makes the one's complement sum 0xFFFF, i.e. checksum 0
        q, _ = want_for(tail)
        want = expected(osrc, osport, odst, odport, q if och is None else cd(och, q), 64, in_family=fam(src))
        off = 34 if fam(osrc) == 4 else 54
        assert want[off + 6:off + 8] == b"\xff\xff", want[off + 6:off + 8]
        fin = frame(src, sport, dst, dport, q if ch is None else cd(ch, q))
        case(f"output checksum computes to 0, sent as 0xFFFF: {name}", fin, XDP_TX, st, want,
             extra=lambda o, off=off: None if o[off + 6:off + 8] == b"\xff\xff" else "checksum not 0xFFFF")

    # ---- checksum mode 1: IPv4 outputs carry 0, IPv6 outputs computed ----
    set_config(mode=1)
    p = pl(31)
    case("mode V4_ZERO: v6 client -> v4 peer has UDP checksum 0", frame(C6, C6P, IFC6, LISTEN, cd(0x4003, p)),
         XDP_TX, "TO_PEER", expected(IFC4, 50003, P4, P4P, p, 64, in_family=6, zero_csum=True))
    case("mode V4_ZERO: v4 client -> v6 peer computed", frame(C4, C4P, IFC4, LISTEN, cd(0x4002, p)),
         XDP_TX, "TO_PEER", expected(IFC6, 50002, P6, P6P, p, 64))
    set_config()

    # ---- a corrupted input stays corrupted (incremental update) ----
    p = pl(50)
    bad = bytearray(frame(C4, C4P, IFC4, LISTEN, cd(0x4000, p)))
    bad[-1] ^= 0x01
    case("corrupted payload -> relayed with a checksum that still fails", bytes(bad),
         XDP_TX, "TO_PEER", checksum_ok=False)

    # ---- random sweep of lengths, all directions (checksums verified independently) ----
    combos = [(C4, C4P, IFC4, LISTEN, 0x4000, "TO_PEER"), (C6, C6P, IFC6, LISTEN, 0x4001, "TO_PEER"),
              (C4, C4P, IFC4, LISTEN, 0x4002, "TO_PEER"), (C6, C6P, IFC6, LISTEN, 0x4003, "TO_PEER"),
              (P4, P4P, IFC4, 50000, None, "TO_CLIENT"), (P6, P6P, IFC6, 50001, None, "TO_CLIENT"),
              (P6, P6P, IFC6, 50002, None, "TO_CLIENT"), (P4, P4P, IFC4, 50003, None, "TO_CLIENT"),
              (A4, A4P, IFC4, LISTEN, 0x4010, "HAIRPIN"), (A6, A6P, IFC6, LISTEN, 0x4012, "HAIRPIN"),
              (B4b, B4bP, IFC4, LISTEN, 0x4013, "HAIRPIN")]
    for i in range(33):
        src, sport, dst, dport, ch, st = combos[i % len(combos)]
        n = rnd.randrange(0, 1300)
        p = pl(n)
        z = fam(src) == 4 and rnd.random() < 0.3
        case(f"sweep {i}: {st} from {src} payload {n}{' csum0' if z else ''}",
             frame(src, sport, dst, dport, p if ch is None else cd(ch, p), chksum=0 if z else None),
             XDP_TX, st)

    # ---- XDP_PASS cases ----
    p = pl(20)
    good4 = dict(src=C4, sport=C4P, dst=IFC4, dport=LISTEN, payload=cd(0x4000, p))
    case("ARP -> PASS", bytes(Ether(src=ROUTER_MAC, dst=RELAY_MAC) / ARP()), XDP_PASS, "PASS_NOT_IP")
    case("VLAN-tagged -> PASS", bytes(Ether(src=ROUTER_MAC, dst=RELAY_MAC) / Dot1Q(vlan=5) /
                                      IP(src=C4, dst=IFC4) / UDP(sport=C4P, dport=LISTEN) / cd(0x4000, p)),
         XDP_PASS, "PASS_NOT_IP")
    # (BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header, so that check is not reachable here)
    case("IPv4 ethertype, frame ends after Ethernet -> PASS", bytes(12) + b"\x08\x00", XDP_PASS, "PASS_MALFORMED")
    case("IPv6 ethertype, truncated IPv6 header -> PASS", bytes(12) + b"\x86\xdd" + bytes(30), XDP_PASS,
         "PASS_MALFORMED")
    case("TCP to listen port -> PASS", bytes(Ether(src=ROUTER_MAC, dst=RELAY_MAC) / IP(src=C4, dst=IFC4) / TCP(sport=C4P, dport=LISTEN)),
         XDP_PASS, "PASS_NOT_UDP")
    case("ICMP -> PASS", bytes(Ether(src=ROUTER_MAC, dst=RELAY_MAC) / IP(src=C4, dst=IFC4) / ICMP()), XDP_PASS, "PASS_NOT_UDP")
    case("IPv4 with options -> PASS",
         bytes(Ether(src=ROUTER_MAC, dst=RELAY_MAC) / IP(src=C4, dst=IFC4, options=[IPOption_NOP(), IPOption_NOP(), IPOption_NOP(),
                                                       IPOption_EOL()]) /
               UDP(sport=C4P, dport=LISTEN) / cd(0x4000, p)), XDP_PASS, "PASS_IP_OPTIONS")
    case("IPv4 fragment MF -> PASS", bytes(Ether(src=ROUTER_MAC, dst=RELAY_MAC) / IP(src=C4, dst=IFC4, flags="MF") /
                                           UDP(sport=C4P, dport=LISTEN) / cd(0x4000, p)),
         XDP_PASS, "PASS_FRAGMENT")
    case("IPv4 fragment offset -> PASS", bytes(Ether(src=ROUTER_MAC, dst=RELAY_MAC) / IP(src=C4, dst=IFC4, frag=100, proto=17) /
                                               Raw(bytes(UDP(sport=C4P, dport=LISTEN) / cd(0x4000, p)))),
         XDP_PASS, "PASS_FRAGMENT")
    case("IPv6 hop-by-hop header -> PASS", bytes(Ether(src=ROUTER_MAC, dst=RELAY_MAC) / IPv6(src=C6, dst=IFC6) / IPv6ExtHdrHopByHop() /
                                                 UDP(sport=C6P, dport=LISTEN) / cd(0x4001, p)),
         XDP_PASS, "PASS_IP_OPTIONS")
    case("IPv6 destination options -> PASS", bytes(Ether(src=ROUTER_MAC, dst=RELAY_MAC) / IPv6(src=C6, dst=IFC6) / IPv6ExtHdrDestOpt() /
                                                   UDP(sport=C6P, dport=LISTEN) / cd(0x4001, p)),
         XDP_PASS, "PASS_IP_OPTIONS")
    case("IPv6 fragment header -> PASS", bytes(Ether(src=ROUTER_MAC, dst=RELAY_MAC) / IPv6(src=C6, dst=IFC6) / IPv6ExtHdrFragment() /
                                               UDP(sport=C6P, dport=LISTEN) / cd(0x4001, p)),
         XDP_PASS, "PASS_FRAGMENT")
    case("DNS reply (source port 53) into the allocation range -> PASS",
         frame(P4, 53, IFC4, 50000, pl(40)), XDP_PASS, "PASS_SRC_PORT")
    add_route(C4, 53, 0x4000, P4, P4P, 50070, reverse=False)
    case("source port 53 to listen port, even with a route -> PASS",
         frame(C4, 53, IFC4, LISTEN, cd(0x4000, p)), XDP_PASS, "PASS_SRC_PORT")
    case("source port 0 -> PASS", frame(C4, 0, IFC4, LISTEN, cd(0x4000, p)), XDP_PASS, "PASS_SRC_PORT")
    case("destination port 22 -> PASS", frame(C4, C4P, IFC4, 22, cd(0x4000, p)), XDP_PASS, "PASS_NOT_RELAY_PORT")
    case("destination port 49151 (below range) -> PASS", frame(P4, P4P, IFC4, 49151, p),
         XDP_PASS, "PASS_NOT_RELAY_PORT")
    case("destination address not the relay's -> PASS", frame(C4, C4P, "10.0.0.99", LISTEN, cd(0x4000, p)),
         XDP_PASS, "PASS_NOT_RELAY_ADDR")
    case("IPv6 destination not the relay's -> PASS", frame(C6, C6P, "2001:db8:aaaa::11", LISTEN, cd(0x4001, p)),
         XDP_PASS, "PASS_NOT_RELAY_ADDR")
    stun = bytes.fromhex("0001000021122a4b") + bytes(12)
    case("STUN Binding request -> PASS", frame(C4, C4P, IFC4, LISTEN, stun), XDP_PASS, "PASS_STUN")
    case("STUN first byte 0x03 -> PASS", frame(C4, C4P, IFC4, LISTEN, b"\x03" + bytes(19)), XDP_PASS, "PASS_STUN")
    case("first byte 0x80 -> PASS", frame(C4, C4P, IFC4, LISTEN, b"\x80\x00\x00\x04abcd"),
         XDP_PASS, "PASS_NOT_CHANNELDATA")
    case("first byte 0x3F -> PASS", frame(C4, C4P, IFC4, LISTEN, b"\x3f\xff\x00\x04abcd"),
         XDP_PASS, "PASS_NOT_CHANNELDATA")
    case("empty datagram to listen port -> PASS", frame(C4, C4P, IFC4, LISTEN, b""),
         XDP_PASS, "PASS_NOT_CHANNELDATA")
    case("padded ChannelData (len 5, 8 bytes) -> PASS", frame(C4, C4P, IFC4, LISTEN, cd(0x4000, b"hello", pad=3)),
         XDP_PASS, "PASS_CD_LENGTH")
    case("ChannelData length larger than payload -> PASS",
         frame(C4, C4P, IFC4, LISTEN, cd(0x4000, b"hello", length=9)), XDP_PASS, "PASS_CD_LENGTH")
    case("ChannelData shorter than its header -> PASS", frame(C4, C4P, IFC4, LISTEN, b"\x40\x00\x00"),
         XDP_PASS, "PASS_CD_LENGTH")
    case("unknown channel -> PASS", frame(C4, C4P, IFC4, LISTEN, cd(0x4999, p)), XDP_PASS, "PASS_NO_ROUTE")
    case("known channel, other client port -> PASS", frame(C4, C4P + 1, IFC4, LISTEN, cd(0x4000, p)),
         XDP_PASS, "PASS_NO_ROUTE")
    case("unknown peer -> PASS", frame("192.0.2.31", P4P, IFC4, 50000, p), XDP_PASS, "PASS_NO_ROUTE")
    case("known peer, other allocation port -> PASS", frame(P4, P4P, IFC4, 50009, p), XDP_PASS, "PASS_NO_ROUTE")
    case("TTL 1 -> PASS", frame(C4, C4P, IFC4, LISTEN, cd(0x4000, p), ttl=1), XDP_PASS, "PASS_TTL")
    case("hop limit 1 -> PASS", frame(P6, P6P, IFC6, 50001, p, ttl=1), XDP_PASS, "PASS_TTL")
    case("IPv6 UDP checksum 0 -> PASS", frame(P6, P6P, IFC6, 50001, p, chksum=0), XDP_PASS, "PASS_MALFORMED")
    f = bytearray(frame(C4, C4P, IFC4, LISTEN, cd(0x4000, p)))
    f[14 + 10] ^= 0xff
    case("bad IPv4 header checksum -> PASS", bytes(f), XDP_PASS, "PASS_MALFORMED")
    f = frame(C4, C4P, IFC4, LISTEN, cd(0x4000, p))
    case("truncated (IP length beyond frame) -> PASS", f[:-5], XDP_PASS, "PASS_MALFORMED")
    f = bytearray(frame(C4, C4P, IFC4, LISTEN, cd(0x4000, p)))
    f[34 + 4:34 + 6] = be16(len(f) - 34 - 2)  # UDP length != IP payload length
    case("UDP length mismatch -> PASS", bytes(f), XDP_PASS, "PASS_MALFORMED")
    case("route with malformed IPv4 peer address -> PASS", frame(C4, C4P, IFC4, LISTEN, cd(0x4020, p)),
         XDP_PASS, "PASS_UNSAFE")
    case("route with allocation port outside range -> PASS", frame(C4, C4P, IFC4, LISTEN, cd(0x4021, p)),
         XDP_PASS, "PASS_UNSAFE")
    case("v4 peer -> v6 client, 1460-byte payload + 52 headers exceeds MTU 1500 -> PASS", frame(P4, P4P, IFC4, 50003, pl(1460)),
         XDP_PASS, "PASS_TOO_BIG")
    case("v4 client -> v4 peer at exactly MTU 1500 after strip -> TX",
         frame(C4, C4P, IFC4, LISTEN, cd(0x4000, pl(1472))), XDP_TX, "TO_PEER")

    # family not available
    set_config(families=1)
    case("v6 peer family disabled: v4 client -> v6 peer -> PASS", frame(C4, C4P, IFC4, LISTEN, cd(0x4002, p)),
         XDP_PASS, "PASS_UNSAFE")
    case("IPv6 input with IPv6 disabled -> PASS", frame(C6, C6P, IFC6, LISTEN, cd(0x4001, p)),
         XDP_PASS, "PASS_NOT_RELAY_ADDR")
    # config states
    zero_config()
    case("config all zero (never written) -> PASS", frame(**good4), XDP_PASS, "PASS_NOT_CONFIGURED")
    set_config(configured=0)
    case("configured marker 0 with valid fields -> PASS", frame(**good4), XDP_PASS, "PASS_NOT_CONFIGURED")
    set_config(mode=7)
    case("unknown checksum mode -> PASS", frame(**good4), XDP_PASS, "PASS_NOT_CONFIGURED")
    set_config(pmin=60000, pmax=50000)
    case("port range min > max -> PASS", frame(**good4), XDP_PASS, "PASS_NOT_CONFIGURED")
    set_config(listen=0)
    case("listen port 0 -> PASS", frame(**good4), XDP_PASS, "PASS_NOT_CONFIGURED")
    set_config(ifc4="0.0.0.0")
    case("IPv4 enabled without interface address -> PASS", frame(**good4), XDP_PASS, "PASS_NOT_CONFIGURED")
    set_config()
    case("config restored -> TX again", frame(**good4), XDP_TX, "TO_PEER",
         expected(IFC4, 50000, P4, P4P, p, 64))


def main():
    if os.geteuid() != 0:
        sys.exit("run as root")
    global OBJ
    if "--object" not in sys.argv or sys.argv.index("--object") + 1 >= len(sys.argv):
        sys.exit("usage: relay_xdp_cases.py --object RELAY.bpf.o [-v]")
    OBJ = sys.argv[sys.argv.index("--object") + 1]
    mounted = False
    if subprocess.run(["mountpoint", "-q", BPFFS]).returncode != 0:
        sh(["mount", "-t", "bpf", "bpf", BPFFS])
        mounted = True
    try:
        r = sh(["bpftool", "prog", "load", OBJ, PROG, "type", "xdp", "pinmaps", MAPS], check=False)
        if r.returncode != 0:
            print(r.stdout[-4000:], r.stderr[-4000:])
            sys.exit("verifier rejected the program")
        print("loaded: kernel verifier accepted gatehouse_relay_xdp")
        run_cases()
    finally:
        for name in ("relay_config", "relay_to_peer", "relay_to_client", "relay_stats"):
            try:
                os.unlink(os.path.join(MAPS, name))
            except FileNotFoundError:
                pass
        for path in (PROG,):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        try:
            os.rmdir(MAPS)
        except OSError:
            pass
        if mounted:
            subprocess.run(["umount", BPFFS])
        try:
            os.rmdir(BPFFS)
        except OSError:
            pass
    failed = [r for r in RESULTS if not r[1]]
    print(f"\n{len(RESULTS) - len(failed)}/{len(RESULTS)} cases passed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

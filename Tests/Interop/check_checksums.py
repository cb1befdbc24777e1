#!/usr/bin/env python3
"""Checks the IPv4 header and UDP checksums of every frame in a capture sent from given addresses.

    check_checksums.py CAPTURE.pcap --source 198.18.3.2 --source fd00:6768:0:3::2

Prints one JSON object: how many UDP frames from those sources were checked, how many of them had a
bad IPv4 header checksum or a bad UDP checksum (with the first few described), and how many IPv4 UDP
datagrams carried checksum 0 ("not computed", legal in IPv4). The checksums are recomputed here with
scapy, independently of the code that wrote them. Exits 0; the caller judges the figures.
"""
import argparse
import json
import sys

from scapy.all import IP, IPv6, UDP, rdpcap, raw  # noqa: E402


def ipv4_header_ok(packet):
    header = raw(packet[IP])[: packet[IP].ihl * 4]
    total = 0
    for index in range(0, len(header), 2):
        total += (header[index] << 8) | header[index + 1]
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


def udp_ok(packet, layer):
    udp = packet[UDP]
    given = udp.chksum
    if layer is IP and given == 0:
        return True, True
    copy = packet[layer].copy()
    copy[UDP].chksum = None
    expected = layer(raw(copy))[UDP].chksum
    # An all-zero sum is sent as 0xFFFF (RFC 768, RFC 8200 section 8.1).
    return given == expected or (expected == 0 and given == 0xFFFF), False


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("capture")
    parser.add_argument("--source", action="append", required=True)
    arguments = parser.parse_args()
    sources = set(arguments.source)
    checked = 0
    zero = 0
    bad = []
    for packet in rdpcap(arguments.capture):
        for layer in (IP, IPv6):
            if layer in packet and UDP in packet and packet[layer].src in sources:
                checked += 1
                if layer is IP and not ipv4_header_ok(packet):
                    bad.append(f"IPv4 header checksum: {packet.summary()}")
                ok, is_zero = udp_ok(packet, layer)
                zero += is_zero
                if not ok:
                    bad.append(f"UDP checksum {packet[UDP].chksum:#06x}: {packet.summary()}")
                break
    json.dump({"checked": checked, "bad": len(bad), "examples": bad[:5], "ipv4_zero_udp_checksum": zero}, sys.stdout)
    print()


if __name__ == "__main__":
    main()

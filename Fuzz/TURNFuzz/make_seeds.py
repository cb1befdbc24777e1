#!/usr/bin/env python3
"""Writes the seed corpus of gatehouse-fuzz (corpus/): harness programs that reach an allocation, a
channel, relayed data both ways, expiry and deletion, plus the RFC 5769 sample requests as raw
datagrams. The input format is described at the top of main.swift. Run it after changing that format."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
TXID = bytes(range(1, 13))


def request(client, method, attributes, signed=True, fingerprint=True, flip=None):
    """Opcode 1 (or 2 with a flipped byte): method index, attributes, credentials, transaction ID."""
    out = bytes([client, 2 if flip else 1, method, len(attributes)]) + b"".join(attributes)
    out += bytes([1 if signed else 0]) + TXID + bytes([0 if fingerprint else 1])
    if flip:
        out += flip
    return out


TRANSPORT_UDP = bytes([0, 1])
LIFETIME_ZERO = bytes([1, 0])
LIFETIME_3600 = bytes([1, 1, 0, 0, 0x0E, 0x10])
CHANNEL_4000 = bytes([3, 0x00, 0x10])
PEER_V4 = bytes([2, 0])
PEER_V6 = bytes([2, 1])
FAMILY_V6 = bytes([4, 1])
ALLOCATE, REFRESH, SEND, PERMISSION, BIND = 1, 2, 3, 4, 5


def channel_data(client, payload, channel=0x0000, exact=True):
    return bytes([client, 3, len(payload)]) + payload + channel.to_bytes(2, "big") + bytes([0 if exact else 1])


def from_peer(payload, peer=0, relayed=0):
    return bytes([0, 4, len(payload)]) + payload + bytes([peer, relayed])


def wait(seconds):
    return bytes([0, 5]) + seconds.to_bytes(2, "big")


allocate = request(0, ALLOCATE, [TRANSPORT_UDP], signed=False) + request(0, ALLOCATE, [TRANSPORT_UDP, LIFETIME_3600])
seeds = {
    "allocate-bind-relay": allocate
    + request(0, BIND, [CHANNEL_4000, PEER_V4])
    + channel_data(0, b"hello")
    + from_peer(b"world")
    + request(0, SEND, [PEER_V4, bytes([6, 3]) + b"abc"], signed=False)
    + wait(700)
    + from_peer(b"late")
    + request(0, REFRESH, [LIFETIME_ZERO]),
    "dual-stack-permissions": request(2, ALLOCATE, [TRANSPORT_UDP], signed=False)
    + request(2, ALLOCATE, [TRANSPORT_UDP, FAMILY_V6])
    + request(2, PERMISSION, [PEER_V6])
    + from_peer(b"v6", peer=1)
    + request(2, BIND, [CHANNEL_4000, PEER_V6])
    + channel_data(2, b"padded", exact=False),
    "flipped-integrity": allocate + request(0, BIND, [CHANNEL_4000, PEER_V4], flip=bytes([0, 30, 0xFF])),
    "expiry": allocate + request(0, BIND, [CHANNEL_4000, PEER_V4]) + wait(650) + request(0, BIND, [CHANNEL_4000, PEER_V4]) + wait(1000),
}

# RFC 5769's sample request (2.1) and request with long-term credentials (2.4), as raw datagrams.
RFC5769 = {
    "rfc5769-request": "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74002400046e0001ff"
    "80290008932ff9b151263b36000600096576746a3a68367659202020000800149aeaa70cbfd8cb56781ef2b5b2d3f249"
    "c1b571a280280004e57a3bcf",
    "rfc5769-long-term-request": "000100602112a44278ad3433c6ad72c029da412e00060012e3839ee38388e383aae38383e382afe382b900000015001c"
    "662f2f3439396b39353464364f4c33346f4c394653547679363473410014000b6578616d706c652e6f72670000080014"
    "f67024656dd64a3e02b8e0712e85c9a28ca89666",
}
for name, text in RFC5769.items():
    message = bytes.fromhex(text)
    seeds[name] = bytes([0, 0, len(message)]) + message

os.makedirs(os.path.join(HERE, "corpus"), exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(HERE, "corpus", name), "wb") as file:
        file.write(data)
print(f"wrote {len(seeds)} seeds")

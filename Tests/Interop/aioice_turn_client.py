"""A TURN client nobody here wrote (aioice) allocating on a relay and relaying to a UDP echo peer.

usage: aioice_turn_client.py RELAY_HOST RELAY_PORT SECRET [COUNT]

Derives TURN REST API credentials from SECRET, allocates, sends COUNT datagrams through the relay to an
echo peer it runs itself on 127.0.0.1, and checks that every one comes back intact. Prints the relayed
address and a closing "N passed, N failed" line; exits non-zero on any loss. With TURN_USERNAME and
TURN_PASSWORD in the environment (credentials the portal handed out), SECRET is ignored and those are used.
"""
import asyncio
import base64
import hashlib
import hmac
import os
import sys
import time

from aioice import turn


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


class Collector(asyncio.DatagramProtocol):
    def __init__(self):
        self.received = asyncio.Queue()

    def datagram_received(self, data, addr):
        self.received.put_nowait((data, addr))


async def main(host, port, secret, count):
    loop = asyncio.get_running_loop()
    echo_transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    peer = echo_transport.get_extra_info("sockname")

    username = os.environ.get("TURN_USERNAME") or "%d:aioice" % (int(time.time()) + 3600)
    password = os.environ.get("TURN_PASSWORD") or base64.b64encode(
        hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()
    transport, protocol = await turn.create_turn_endpoint(
        Collector, server_addr=(host, port), username=username, password=password)
    print("relayed address", transport.get_extra_info("sockname"), flush=True)

    passed = failed = 0
    for index in range(count):
        payload = b"aioice-%04d-" % index + bytes(range(64))
        transport.sendto(payload, peer)
        try:
            data, addr = await asyncio.wait_for(protocol.received.get(), timeout=3)
        except asyncio.TimeoutError:
            failed += 1
            continue
        if data == payload and addr[1] == peer[1]:
            passed += 1
        else:
            failed += 1
    transport.close()
    echo_transport.close()
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 0 if failed == 0 and passed == count else 1


if __name__ == "__main__":
    count = int(sys.argv[4]) if len(sys.argv) > 4 else 50
    sys.exit(asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], count)))

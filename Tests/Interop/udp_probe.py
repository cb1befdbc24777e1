#!/usr/bin/env python3
"""UDP probes for the cluster's end-to-end tests.

  udp_probe.py receive PORT-LOW PORT-HIGH   one line "PORT UNIX-TIME" per datagram that arrives on any of
                                            the ports (flushed at once), until killed
  udp_probe.py send HOST PORT SECONDS       a datagram every millisecond for SECONDS, then the count
"""
import select
import socket
import sys
import time


def receive(low: int, high: int) -> None:
    sockets = []
    for port in range(low, high + 1):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", port))
        sockets.append(s)
    print("listening", flush=True)
    while True:
        ready, _, _ = select.select(sockets, [], [])
        now = time.time()
        for s in ready:
            s.recv(2048)
            print(f"{s.getsockname()[1]} {now:.6f}", flush=True)


def send(host: str, port: int, seconds: float) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    end = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < end:
        try:
            s.sendto(b"probe %d" % sent, (host, port))
            sent += 1
        except OSError:
            pass  # unreachable (ICMP from the client or the gateway): keep sending
        time.sleep(0.001)
    print(f"sent {sent}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "receive":
        receive(int(sys.argv[2]), int(sys.argv[3]))
    elif sys.argv[1] == "send":
        send(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    else:
        sys.exit(__doc__)

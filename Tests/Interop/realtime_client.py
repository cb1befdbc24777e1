"""A relay, gateway or client side of the portal's realtime API, played with the `websockets` library
(a WebSocket client nobody here wrote), in a process of its own so that the test process's load never
delays it.

    realtime_client.py URL TOKEN [--frames FILE] [--answers N] [--ignore EVENTS] [--hold] [--stream] [--timeout SECONDS]

Sends the frames of FILE (one per line) in order, then reads: heartbeats are counted, anything else is an answer. With
--answers N it prints "answered" and the answers once N came, and closes, or with --hold keeps the
connection open until SIGTERM (or the portal closes it, or --timeout); without, it reads until the portal closes (or --timeout).
With --heartbeat it answers each heartbeat with one (without, it stays silent). With --stream it also prints each frame as it comes, {"frame": {...}}, and reads until SIGTERM (or a close, or
--timeout). --ignore EVENTS (comma-separated, e.g. ice_candidates, which a gateway trickles at its own pace) keeps those
frames out of the answers. Prints one JSON line at the end:
{"answers": [...], "heartbeats": n, "close_code": c or null, "elapsed": seconds, "refused": status or null}.
"""

import argparse
import asyncio
import json
import signal
import sys
import time

import websockets


async def hold(socket) -> None:
    """Keeps the connection open until SIGTERM, or until the portal closes it."""
    stop = asyncio.Event()
    # A child inherits its parent's blocked signals; the test process may block SIGTERM.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    stopped = asyncio.ensure_future(stop.wait())
    closed = asyncio.ensure_future(socket.wait_closed())
    await asyncio.wait([stopped, closed], return_when=asyncio.FIRST_COMPLETED)
    for waiter in (stopped, closed):
        waiter.cancel()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("--frames")
    parser.add_argument("--answers", type=int)
    parser.add_argument("--ignore", default="", help="comma-separated events not counted as answers")
    parser.add_argument("--hold", action="store_true")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--heartbeat", action="store_true", help="answer each heartbeat with one, as a live peer does")
    parser.add_argument("--timeout", type=float, default=20)
    args = parser.parse_args()

    result = {"answers": [], "heartbeats": 0, "close_code": None, "elapsed": 0.0, "refused": None}
    started = time.monotonic()
    try:
        async with websockets.connect(args.url, additional_headers={"Authorization": f"Bearer {args.token}"},
                                      max_size=1 << 22, ping_interval=None) as socket:
            if args.frames:
                with open(args.frames, encoding="utf-8") as file:
                    for line in file.read().splitlines():
                        await socket.send(line)
            if args.stream:
                # SIGTERM ends the reading (the summary is still printed).
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
                reader = asyncio.current_task()
                asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, reader.cancel)
            try:
                async with asyncio.timeout(args.timeout):
                    async for message in socket:
                        frame = json.loads(message)
                        if frame.get("event") == "heartbeat":
                            result["heartbeats"] += 1
                            if args.heartbeat:
                                await socket.send('{"event": "heartbeat", "payload": {}}')
                            continue
                        if frame.get("event") in args.ignore.split(","):
                            continue
                        result["answers"].append(frame)
                        if args.stream:
                            print(json.dumps({"frame": frame}), flush=True)
                        if args.answers is not None and len(result["answers"]) >= args.answers:
                            print("answered", json.dumps(result["answers"]), flush=True)
                            if args.hold:
                                await hold(socket)
                            break
            except TimeoutError:
                pass
            except asyncio.CancelledError:
                asyncio.current_task().uncancel()
            except websockets.exceptions.ConnectionClosed:
                pass  # the portal closed; its code is below
            result["close_code"] = socket.close_code
    except websockets.exceptions.InvalidStatus as error:
        result["refused"] = error.response.status_code
    result["elapsed"] = time.monotonic() - started
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)

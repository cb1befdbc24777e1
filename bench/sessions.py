"""Makes N client sessions at a site's gateway for the gateway benchmarks: N devices join the portal's
client API (one client token, each device its own external ID and WireGuard key) and each creates a
flow to the given resources; the portal authorises them at the gateway, where each becomes a session
with its kernel rules. The flows outlive the connections (until they expire), so the devices leave
once their flows are made. Prints how many flows were made and how long it took.

    python bench/sessions.py URL TOKEN COUNT RESOURCE_ID [RESOURCE_ID ...] [--parallel 50]
"""
import argparse
import asyncio
import base64
import json
import os
import sys
import time

import websockets


async def one(url, token, index, resources, tally):
    key = base64.b64encode(os.urandom(32)).decode()
    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"}, ping_interval=None) as socket:
        await socket.send(json.dumps({"event": "join", "ref": "j", "payload": {
            "version": "1.1", "external_id": f"bench-peer-{index}", "name": f"bench-peer-{index}", "public_key": key}}))
        for resource in resources:
            await socket.send(json.dumps({"event": "create_flow", "ref": resource, "payload": {"resource_id": resource, "connected_gateway_ids": []}}))
        waiting = set(resources)
        async with asyncio.timeout(60):
            async for message in socket:
                frame = json.loads(message)
                if frame.get("ref") in waiting and frame.get("event") in ("flow_created", "flow_creation_failed", "reply"):
                    waiting.discard(frame["ref"])
                    tally[frame["event"]] = tally.get(frame["event"], 0) + 1
                    if frame["event"] != "flow_created":
                        print(json.dumps(frame), file=sys.stderr)
                    if not waiting:
                        return


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("count", type=int)
    parser.add_argument("resources", nargs="+")
    parser.add_argument("--parallel", type=int, default=50)
    args = parser.parse_args()
    tally = {}
    gate = asyncio.Semaphore(args.parallel)
    started = time.monotonic()

    async def bounded(index):
        async with gate:
            # A connection refused or cut under the load of a thousand joins is tried again.
            for attempt in range(3):
                try:
                    return await one(args.url, args.token, index, args.resources, tally)
                except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as error:
                    print(f"device {index}, attempt {attempt + 1}: {error!r}", file=sys.stderr)
                    await asyncio.sleep(0.5)

    await asyncio.gather(*(bounded(index) for index in range(args.count)))
    print(json.dumps({"sessions": args.count, "answers": tally, "seconds": round(time.monotonic() - started, 1)}))
    sys.exit(0 if tally.get("flow_created", 0) >= args.count * len(args.resources) else 1)


if __name__ == "__main__":
    asyncio.run(main())

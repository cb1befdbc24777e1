"""One end of ICE played by aioice (PyPI, an implementation nobody here wrote) over real sockets, for
Gatehouse's agent to meet:

    aioice_peer.py controlling|controlled [--stun HOST:PORT] [--turn HOST:PORT --turn-username U --turn-password P]

Gathers its candidates (host, and server-reflexive or relayed ones when given a STUN or TURN server),
prints {"ufrag", "password", "candidates": [RFC 8839 texts]} on one line, reads the other end's
{"ufrag", "password", "candidates"} from stdin, connects (checks and nomination), prints {"connected":
true, "local": [host, port], "remote": [host, port]} (the nominated pair), then waits for one datagram
of data, prints {"received": HEX}, and answers each datagram that comes with b"pong " + the data until
the other end says on stdin that it has its answer (a line {"done": true}); then prints {"done": true}.
Any failure prints {"error": ...} and exits 1.
"""
import argparse
import asyncio
import json
import sys

import aioice


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["controlling", "controlled"])
    parser.add_argument("--stun")
    parser.add_argument("--turn")
    parser.add_argument("--turn-username")
    parser.add_argument("--turn-password")
    parser.add_argument("--timeout", type=float, default=30)
    args = parser.parse_args()
    options = {}
    if args.stun:
        host, port = args.stun.rsplit(":", 1)
        options["stun_server"] = (host, int(port))
    if args.turn:
        host, port = args.turn.rsplit(":", 1)
        options.update(turn_server=(host, int(port)), turn_username=args.turn_username, turn_password=args.turn_password)
    connection = aioice.Connection(ice_controlling=args.role == "controlling", components=1, use_ipv6=False, **options)
    try:
        await connection.gather_candidates()
        print(json.dumps({"ufrag": connection.local_username, "password": connection.local_password,
                          "candidates": [candidate.to_sdp() for candidate in connection.local_candidates]}), flush=True)
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        theirs = json.loads(line)
        connection.remote_username = theirs["ufrag"]
        connection.remote_password = theirs["password"]
        for text in theirs["candidates"]:
            await connection.add_remote_candidate(aioice.Candidate.from_sdp(text.removeprefix("candidate:")))
        await connection.add_remote_candidate(None)
        async with asyncio.timeout(args.timeout):
            await connection.connect()
            pair = connection._nominated.get(1)
            print(json.dumps({"connected": True, "local": list(pair.local_addr) if pair else None,
                              "remote": list(pair.remote_addr) if pair else None}), flush=True)
            data = await connection.recv()
            print(json.dumps({"received": data.hex()}), flush=True)
            await connection.send(b"pong " + data)
            # Answer again whatever else comes (the other end repeats until it has an answer), until it
            # says it is done.
            done = asyncio.ensure_future(asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline))
            while not done.done():
                receiving = asyncio.ensure_future(connection.recv())
                finished, _ = await asyncio.wait({receiving, done}, return_when=asyncio.FIRST_COMPLETED)
                if receiving in finished:
                    await connection.send(b"pong " + receiving.result())
                else:
                    receiving.cancel()
        print(json.dumps({"done": True}), flush=True)
    except Exception as error:
        print(json.dumps({"error": repr(error)}), flush=True)
        sys.exit(1)
    finally:
        await connection.close()


if __name__ == "__main__":
    asyncio.run(main())

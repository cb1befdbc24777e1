"""Checks Gatehouse's ICE candidates against aioice's (PyPI), which nobody here wrote: reads JSON lines
{"sdp": ..., "kind": ..., "priority": ...} and {"pair": [local_sdp, remote_sdp], "controlling": ...,
"priority": ...} on stdin; for each, aioice parses the SDP, and its own priority formula and its pair
priority are compared with ours. Prints one JSON summary: how many agreed and the first disagreements.
"""
import json
import sys

from aioice.candidate import Candidate, candidate_priority
from aioice.ice import candidate_pair_priority

agreed, disagreed = 0, []
for line in sys.stdin:
    case = json.loads(line)
    try:
        if "pair" in case:
            local, remote = (Candidate.from_sdp(text.removeprefix("candidate:")) for text in case["pair"])
            theirs = candidate_pair_priority(local, remote, case["controlling"])
            ok = theirs == case["priority"]
        else:
            parsed = Candidate.from_sdp(case["sdp"].removeprefix("candidate:"))
            theirs = {"priority": parsed.priority, "type": parsed.type, "host": parsed.host, "port": parsed.port,
                      "related": [parsed.related_address, parsed.related_port] if parsed.related_address else None,
                      "formula": candidate_priority(1, parsed.type, case["local_preference"])}
            ours = {"priority": case["priority"], "type": case["kind"], "host": case["host"], "port": case["port"],
                    "related": case["related"], "formula": case["priority"]}
            ok = theirs == ours
            theirs = [theirs, ours]
    except Exception as error:  # a parse failure is a disagreement
        ok, theirs = False, repr(error)
    if ok:
        agreed += 1
    elif len(disagreed) < 5:
        disagreed.append({"case": case, "aioice": theirs})
print(json.dumps({"agreed": agreed, "disagreed": disagreed}))

"""Checks Gatehouse's ICE connectivity-check messages against aioice's STUN (PyPI), both ways: for each
JSON line {"kind": "request"|"success"|"error", "ours": HEX, "password": ..., and the content}, aioice
parses our message, verifies its FINGERPRINT and MESSAGE-INTEGRITY and reads its attributes; and it
makes the same message itself (hex under "theirs") for us to read. Prints a JSON list, one per line.
"""
import json
import sys

from aioice import stun

results = []
for line in sys.stdin:
    case = json.loads(line)
    found = {}
    try:
        message = stun.parse_message(bytes.fromhex(case["ours"]))
        attributes = message.attributes
        found = {
            "class": message.message_class.name.lower(),
            "integrity": message.check_message_integrity(case["password"].encode()),
            "username": attributes.get("USERNAME"),
            "priority": attributes.get("PRIORITY"),
            "use_candidate": "USE-CANDIDATE" in attributes,
            "controlling": attributes.get("ICE-CONTROLLING"),
            "controlled": attributes.get("ICE-CONTROLLED"),
            "mapped": list(attributes["XOR-MAPPED-ADDRESS"]) if "XOR-MAPPED-ADDRESS" in attributes else None,
            "error": attributes["ERROR-CODE"][0] if "ERROR-CODE" in attributes else None,
        }
    except Exception as error:
        found = {"failure": repr(error)}
    transaction = bytes.fromhex(case["transaction"])
    if case["kind"] == "request":
        attributes = {"USERNAME": case["username"], "PRIORITY": case["priority"]}
        if case["use_candidate"]:
            attributes["USE-CANDIDATE"] = None
        attributes["ICE-CONTROLLING" if case["controlling"] else "ICE-CONTROLLED"] = case["tie_breaker"]
        theirs = stun.Message(stun.Method.BINDING, stun.Class.REQUEST, transaction_id=transaction, attributes=attributes)
    elif case["kind"] == "success":
        theirs = stun.Message(stun.Method.BINDING, stun.Class.RESPONSE, transaction_id=transaction,
                              attributes={"XOR-MAPPED-ADDRESS": (case["host"], case["port"])})
    else:
        theirs = stun.Message(stun.Method.BINDING, stun.Class.ERROR, transaction_id=transaction,
                              attributes={"ERROR-CODE": (case["code"], "Role Conflict")})
    theirs.add_message_integrity(case["password"].encode())
    theirs.add_fingerprint()
    found["theirs"] = bytes(theirs).hex()
    results.append(found)
print(json.dumps(results))

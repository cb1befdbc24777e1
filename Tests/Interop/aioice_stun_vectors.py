"""STUN messages built and checked by aioice, an implementation nobody here wrote.

usage:
  aioice_stun_vectors.py make
      prints, one per line, "NAME HEX" for messages aioice encodes (with MESSAGE-INTEGRITY from the
      long-term key of USERNAME/REALM/PASSWORD below, and FINGERPRINT).
  aioice_stun_vectors.py check HEX
      parses HEX with aioice, verifies its MESSAGE-INTEGRITY with the same key and its FINGERPRINT, and
      prints the attributes it found as "name=value" lines.
"""
import binascii
import hashlib
import sys

from aioice import stun

USERNAME = "1700003600:vector"
REALM = "gatehouse"
PASSWORD = "vector-password"
KEY = hashlib.md5(("%s:%s:%s" % (USERNAME, REALM, PASSWORD)).encode()).digest()
TRANSACTION = bytes(range(1, 13))


def make():
    allocate = stun.Message(stun.Method.ALLOCATE, stun.Class.REQUEST, transaction_id=TRANSACTION)
    allocate.attributes["REQUESTED-TRANSPORT"] = 0x11000000
    allocate.attributes["LIFETIME"] = 1200
    allocate.attributes["USERNAME"] = USERNAME
    allocate.attributes["REALM"] = REALM
    allocate.attributes["NONCE"] = b"0123456789abcdef"
    allocate.add_message_integrity(KEY)
    allocate.add_fingerprint()
    print("allocate", binascii.hexlify(bytes(allocate)).decode())

    permission = stun.Message(stun.Method.CREATE_PERMISSION, stun.Class.REQUEST, transaction_id=TRANSACTION)
    permission.attributes["XOR-PEER-ADDRESS"] = ("2001:db8::1234", 40000)
    permission.attributes["USERNAME"] = USERNAME
    permission.attributes["REALM"] = REALM
    permission.attributes["NONCE"] = b"0123456789abcdef"
    permission.add_message_integrity(KEY)
    print("permission", binascii.hexlify(bytes(permission)).decode())

    send = stun.Message(stun.Method.SEND, stun.Class.INDICATION, transaction_id=TRANSACTION)
    send.attributes["XOR-PEER-ADDRESS"] = ("192.0.2.44", 5000)
    send.attributes["DATA"] = b"hello peer"
    print("send", binascii.hexlify(bytes(send)).decode())


def check(text):
    data = binascii.unhexlify(text)
    # parse_message checks FINGERPRINT; MESSAGE-INTEGRITY is checked with the key.
    message = stun.parse_message(data)
    if "MESSAGE-INTEGRITY" in message.attributes and not message.check_message_integrity(KEY):
        raise ValueError("MESSAGE-INTEGRITY does not verify")
    for name, value in message.attributes.items():
        print("%s=%s" % (name, value))
    print("method=%s class=%s" % (message.message_method.name, message.message_class.name))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make()
    else:
        check(sys.argv[2])

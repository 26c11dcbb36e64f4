"""Checks a packet codec against packet_vectors.json; runs under CPython and MicroPython alike.

The same function tests the codec under both interpreters, so one set of vectors (bytes <->
packets, and payload fields <-> payload bytes, or the ValueError a malformed payload must give)
pins the wire format on the host and on the board. Run as a script under MicroPython:
``micropython vector_check.py <firmware dir> <vectors.json>``; it prints ``OK <count>``.
"""

import binascii
import json
import sys


def check(protocol, vectors):
    """Return a list of failures (empty when the codec matches every vector) and the count."""
    failures = []
    checked = 0
    unhex = binascii.unhexlify
    crc = vectors["crc_check"]
    if protocol.crc16(unhex(crc["data"])) != crc["crc"]:
        failures.append("crc16 check value")
    packets = []
    for v in vectors["packets"]:
        packet = protocol.Packet(v["seq"], v["code"], v["session"], unhex(v["payload"]))
        packets.append(packet)
        if packet.encode() != unhex(v["bytes"]):
            failures.append("encode: " + v["name"])
        parsed = protocol.PacketParser().feed(unhex(v["bytes"]))
        if parsed != [packet]:
            failures.append("decode: " + v["name"])
        checked += 1
    for s in vectors["streams"]:
        parser = protocol.PacketParser()
        got = []
        for chunk in s["chunks"]:
            got.extend(parser.feed(unhex(chunk)))
        if s["discard_partial"]:
            got.extend(parser.discard_partial())
        if got != [packets[i] for i in s["packets"]]:
            failures.append("stream: " + s["name"])
        if s["crc_errors"] is not None and parser.crc_errors != s["crc_errors"]:
            failures.append("stream crc errors: " + s["name"])
        checked += 1
    for v in vectors.get("payloads", []):
        if not _payload_matches(protocol, v):
            failures.append("payload: " + v["name"])
        checked += 1
    return failures, checked


def _payload_matches(protocol, vector):
    """The codec packs the fields to the bytes and unpacks them back, or, for a vector without
    fields, refuses the bytes with ValueError."""
    pack = getattr(protocol, "pack_" + vector["codec"])
    unpack = getattr(protocol, "unpack_" + vector["codec"])
    payload = binascii.unhexlify(vector["payload"])
    if vector["items"] is None:
        try:
            unpack(payload)
        except ValueError:
            return True
        return False
    items = [tuple(item) for item in vector["items"]]
    first, got = unpack(payload)
    return (pack(vector["tag"], items) == payload and first == vector["tag"]
            and [tuple(item) for item in got] == items)


if __name__ == "__main__":
    sys.path.insert(0, sys.argv[1])
    from focusboard import protocol as firmware_protocol

    with open(sys.argv[2]) as f:
        problems, count = check(firmware_protocol, json.load(f))
    if problems:
        print("FAIL " + "; ".join(problems))
        sys.exit(1)
    print(f"OK {count}")

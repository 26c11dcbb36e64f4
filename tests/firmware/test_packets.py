"""The packet codec against the shared vectors, under CPython and under the MicroPython port."""

import binascii
import json
import subprocess
import sys
from pathlib import Path

import pytest

from controller.hardware import protocol
from tests.firmware.vector_check import check

HERE = Path(__file__).parent
VECTORS = json.loads((HERE / "packet_vectors.json").read_text())
FIRMWARE = HERE.parents[1] / "firmware"


def vector_count():
    return len(VECTORS["packets"]) + len(VECTORS["streams"]) + len(VECTORS["payloads"])


def test_codec_matches_vectors_under_cpython():
    failures, count = check(protocol, VECTORS)
    assert failures == []
    assert count == vector_count()


@pytest.mark.firmware
def test_codec_matches_vectors_under_micropython():
    result = subprocess.run(
        [sys.executable, "-m", "micropython_unix", str(HERE / "vector_check.py"), str(FIRMWARE),
         str(HERE / "packet_vectors.json")],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.stdout.strip() == f"OK {vector_count()}", result.stdout + result.stderr


def test_firmware_runs_the_host_codec_itself():
    assert (FIRMWARE / "focusboard" / "protocol.py").resolve() == Path(protocol.__file__).resolve()


@pytest.mark.parametrize("vector", VECTORS["packets"], ids=lambda v: v["name"])
def test_vector_crc_agrees_with_an_independent_implementation(vector):
    raw = bytes.fromhex(vector["bytes"])
    # binascii.crc_hqx with init 0xFFFF is CRC-16/CCITT-FALSE, written by someone else.
    assert binascii.crc_hqx(raw[1:-2], 0xFFFF) == int.from_bytes(raw[-2:], "little")
    assert raw[0] == protocol.SYNC and raw[1] == len(raw) - 4


def test_every_single_bit_flip_is_rejected():
    good = protocol.Packet(9, protocol.MOVE, 1234, b"\x00\x10\x00\x00\x00\x00\x00\x00\x00").encode()
    for bit in range(8, len(good) * 8):  # every bit after the sync byte
        bad = bytearray(good)
        bad[bit // 8] ^= 1 << (bit % 8)
        parser = protocol.PacketParser()
        assert parser.feed(bytes(bad)) + parser.discard_partial() == [], bit


def test_oversized_payload_is_refused():
    with pytest.raises(ValueError, match="exceeds"):
        protocol.Packet(0, protocol.OK, 0, bytes(protocol.MAX_PAYLOAD + 1)).encode()


def test_set_leds_payload_round_trips_and_rejects_wrong_length():
    payload = protocol.pack_set_leds(5, [(3, 200), (224, 1)])
    assert protocol.unpack_set_leds(payload) == (5, [(3, 200), (224, 1)])
    with pytest.raises(ValueError, match="expected"):
        protocol.unpack_set_leds(payload[:-1])


def test_set_leds_rgb_payload_round_trips_and_rejects_wrong_length():
    colours = [(19, 255, 0, 0), (43, 0, 0, 255), (300, 1, 2, 3)]
    payload = protocol.pack_set_leds_rgb(9, colours)
    assert len(payload) == 3 + 5 * len(colours)
    assert protocol.unpack_set_leds_rgb(payload) == (9, colours)
    with pytest.raises(ValueError, match="SET_LEDS_RGB payload holds 17 bytes, expected 18"):
        protocol.unpack_set_leds_rgb(payload[:-1])
    with pytest.raises(ValueError, match="SET_LEDS_RGB payload too short"):
        protocol.unpack_set_leds_rgb(b"\x01")


def test_the_vector_file_names_the_colour_command_and_checks_refusals():
    assert any(v["code"] == protocol.SET_LEDS_RGB for v in VECTORS["packets"])
    assert {v["codec"] for v in VECTORS["payloads"]} == {"set_leds", "set_leds_rgb"}
    assert any(v["items"] is None for v in VECTORS["payloads"])


def test_a_payload_vector_that_disagrees_with_the_codec_is_reported():
    wrong = {**VECTORS, "payloads": [{"name": "swapped emitters", "codec": "set_leds_rgb",
                                      "tag": 7, "items": [[19, 0, 0, 255]],
                                      "payload": "0700011300ff0000"}]}
    assert check(protocol, wrong)[0] == ["payload: swapped emitters"]

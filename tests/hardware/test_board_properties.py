"""Generated bad input for the board's two front doors: the packet codec, and the numbers of
``focuslock board`` (issue 9).

The codec (controller/hardware/protocol.py, the module host and firmware share) gets arbitrary
byte streams cut into arbitrary chunks: it never raises, accounts for every byte, and finds every
valid packet hidden among garbage. The command line gets generated text for each of its number
arguments: argparse exits 2 with one line, or the value is finite and in range; run against the
real firmware, a command either works or exits 2 with one line, and the motor never leaves the
travel. Each suite's budget is its ``max_examples``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import itertools
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.cli import build_parser, main
from controller.commands.board import MAX_HOLD_S
from controller.hardware import protocol
from controller.hardware.board import BoardStatus
from controller.hardware.board_leds import MAX_COLOURED_LEDS
from controller.hardware.board_link import BoardError
from controller.sim.board import LitLeds, SimBoardSettings, SimulatedBoard

# -- the packet codec --------------------------------------------------------------------------

packets = st.builds(protocol.Packet, st.integers(0, 255), st.integers(0, 255),
                    st.integers(0, 0xFFFFFFFF), st.binary(max_size=protocol.MAX_PAYLOAD))


def parse(stream: bytes, cuts: list[int]) -> tuple[list[protocol.Packet], protocol.PacketParser]:
    """Feed ``stream`` in chunks cut at ``cuts``, then give up on any partial packet left, as
    the link and the firmware do when the line goes quiet."""
    parser = protocol.PacketParser()
    found: list[protocol.Packet] = []
    edges = [0, *sorted(c % (len(stream) + 1) for c in cuts), len(stream)]
    for start, end in itertools.pairwise(edges):
        found += parser.feed(stream[start:end])
    while parser.pending:
        found += parser.discard_partial()
    return found, parser


@settings(max_examples=300)
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=8))
def test_any_byte_stream_is_parsed_without_an_error_and_every_byte_accounted_for(stream, cuts):
    found, parser = parse(stream, cuts)
    for packet in found:
        assert packet.encode() in stream  # a packet is only ever what the line really carried
    assert sum(len(p.encode()) for p in found) + parser.dropped_bytes == len(stream)


@settings(max_examples=200)
@given(st.lists(st.tuples(st.binary(max_size=40), packets), min_size=1, max_size=5),
       st.binary(max_size=40), st.lists(st.integers(0, 2000), max_size=8))
def test_valid_packets_hidden_in_garbage_are_all_recovered_in_order(pieces, tail, cuts):
    stream = b"".join(garbage + packet.encode() for garbage, packet in pieces) + tail
    found, _ = parse(stream, cuts)
    remaining = iter(found)
    # a subsequence: garbage may hold packets of its own, but none of ours is lost or reordered
    assert all(any(packet == f for f in remaining) for _, packet in pieces)


@settings(max_examples=200)
@given(packets)
def test_a_packet_round_trips_through_its_bytes(packet):
    raw = packet.encode()
    assert len(raw) == 1 + 1 + protocol.HEADER_LEN + len(packet.payload) + 2
    assert protocol.PacketParser().feed(raw) == [packet]


@settings(max_examples=50)
@given(st.binary(min_size=protocol.MAX_PAYLOAD + 1, max_size=protocol.MAX_PAYLOAD + 300))
def test_an_oversized_payload_is_the_documented_value_error(payload):
    with pytest.raises(ValueError, match="exceeds"):
        protocol.Packet(0, protocol.OK, 0, payload).encode()


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_payload_decoders_give_their_fields_or_their_documented_error(payload):
    for decode, encode in ((protocol.unpack_set_leds, protocol.pack_set_leds),
                           (protocol.unpack_set_leds_rgb, protocol.pack_set_leds_rgb),
                           (protocol.unpack_led_geometry, protocol.pack_led_geometry)):
        try:
            first, items = decode(payload)
        except ValueError:
            continue
        assert encode(first, items) == payload
    try:
        BoardStatus.from_payload(payload)
    except BoardError as exc:
        assert "malformed STATUS reply" in str(exc)


byte = st.integers(0, 255)
led_colours = st.lists(st.tuples(st.integers(0, 0xFFFF), byte, byte, byte),
                       max_size=MAX_COLOURED_LEDS)


@settings(max_examples=200)
@given(st.integers(0, 0xFFFF), led_colours)
def test_led_colours_round_trip_through_one_packet(tag, colours):
    payload = protocol.pack_set_leds_rgb(tag, colours)
    assert len(payload) <= protocol.MAX_PAYLOAD  # as many as the driver sends fit one packet
    assert protocol.unpack_set_leds_rgb(payload) == (tag, colours)
    packet = protocol.Packet(1, protocol.SET_LEDS_RGB, 1, payload)
    assert protocol.PacketParser().feed(packet.encode()) == [packet]


@settings(max_examples=200)
@given(st.integers(0, 0xFFFF), led_colours.filter(bool), st.data())
def test_a_cut_or_padded_colour_payload_is_the_documented_value_error(tag, colours, data):
    payload = protocol.pack_set_leds_rgb(tag, colours)
    cut = data.draw(st.integers(1, len(payload)))
    for wrong in (payload[:-cut], payload + data.draw(st.binary(min_size=1, max_size=8))):
        with pytest.raises(ValueError, match="SET_LEDS_RGB payload"):
            protocol.unpack_set_leds_rgb(wrong)


# -- the numbers of ``focuslock board`` --------------------------------------------------------

number_text = st.one_of(
    st.floats().map(repr),
    st.floats(-80, 80).map(lambda x: f"{x:.3f}"),
    st.integers(-10**40, 10**40).map(str),
    st.text(max_size=10),
    st.sampled_from(["nan", "-inf", "1e400", "1e9", "-1e-300", "0", " 7 ", "1_5", "0x10", "٣"]),
)

NUMBER_ARGUMENTS = {  # argv of one argument, its value's name, and the range it must land in
    "--by": (lambda t: ["move", f"--by={t}"], "by", (-math.inf, math.inf)),
    "--to": (lambda t: ["move", f"--to={t}"], "to", (-math.inf, math.inf)),
    "set-position UM": (lambda t: ["set-position", "--", t], "z_um", (-math.inf, math.inf)),
    "--steps-per-um": (lambda t: ["status", f"--steps-per-um={t}"], "steps_per_um",
                       (math.ulp(0.0), math.inf)),  # > 0
    "--hold": (lambda t: ["leds", "--index", "1", f"--hold={t}"], "hold", (0.0, MAX_HOLD_S)),
    "--wavelength": (lambda t: ["leds", "--index", "1", f"--wavelength={t}"], "wavelength",
                     (math.ulp(0.0), math.inf)),  # > 0
}


@functools.cache
def focuslock_parser() -> argparse.ArgumentParser:
    return build_parser()


def parse_board_args(argv: list[str]) -> tuple[argparse.Namespace | None, str]:
    """The parsed namespace (or None when argparse refused) and what argparse wrote."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            return focuslock_parser().parse_args(["board", *argv]), err.getvalue()
        except SystemExit as exc:
            assert exc.code == 2
            return None, err.getvalue()


@settings(max_examples=400)
@given(st.sampled_from(sorted(NUMBER_ARGUMENTS)), number_text)
def test_every_number_argument_is_finite_and_in_range_or_one_line_exit_2(argument, text):
    argv, name, (low, high) = NUMBER_ARGUMENTS[argument]
    args, err = parse_board_args(argv(text))
    if args is None:
        errors = [line for line in err.splitlines() if "error:" in line]
        assert len(errors) == 1 and "Traceback" not in err, err
    else:
        value = getattr(args, name)
        assert math.isfinite(value) and low <= value <= high


TRAVEL_UM = 60.0  # short, so a generated move takes a fraction of a second


@pytest.fixture(scope="module")
def board_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimulatedBoard, Path]]:
    workdir = tmp_path_factory.mktemp("board")
    config = workdir / "box.toml"
    config.write_text(f"[board]\ntravel_min_um = {-TRAVEL_UM}\ntravel_max_um = {TRAVEL_UM}\n")
    with SimulatedBoard(workdir, SimBoardSettings(endstop_min_steps=None)) as sim:
        yield sim, config


def run_board(argv: list[str]) -> tuple[int | str | None, str]:
    """``focuslock board ARGV`` in-process: its exit status and stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code: int | str | None = main(["board", *argv])
        except SystemExit as exc:
            code = exc.code
    return code, err.getvalue()


commands = st.one_of(  # (the argv before the common options, the argv after them)
    st.builds(lambda t: (["move", f"--by={t}"], []), number_text),
    st.builds(lambda t: (["move", f"--to={t}"], []), number_text),
    st.builds(lambda t: (["set-position"], ["--", t]), number_text),
    st.builds(lambda t: (["leds", "--hold", "0.01", "--index", t], []), number_text),
    st.builds(lambda t: (["leds", "--hold", "0.01", "--index", "1", f"--wavelength={t}"], []),
              st.one_of(number_text, st.floats(0.4, 0.7).map(repr))),
)


@pytest.mark.firmware
@settings(max_examples=40)
@given(commands, st.one_of(st.none(), number_text, st.floats(0.01, 1000).map(repr)))
def test_board_commands_with_generated_numbers_work_or_exit_2_and_stay_in_the_travel(
        board_sim, command, steps_per_um):
    sim, config = board_sim
    common = ["--port", sim.port, "--config", str(config)]
    assert run_board(["set-position", "0", *common]) == (0, "")
    start = sim.motor_steps()
    spu = [f"--steps-per-um={steps_per_um}"] if steps_per_um is not None else []
    head, tail = command
    code, err = run_board([*head, *common, *spu, *tail])
    assert code in (0, 2) and "Traceback" not in err, err
    if code == 2:
        assert len([line for line in err.splitlines() if "error:" in line]) == 1, err
        assert sim.motor_steps() == start  # refused: nothing moved
    else:  # it ran, so its scale parsed; from 0 µm, a move stays inside ±TRAVEL_UM
        scale = float(steps_per_um) if steps_per_um is not None else 10.0
        assert abs(sim.motor_steps() - start) <= round(TRAVEL_UM * scale)
    assert sim.lit_leds() == LitLeds()  # every command releases the board

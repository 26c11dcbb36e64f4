"""The protocol's pure functions: what is a command, how replies and units are written."""

from __future__ import annotations

import pytest

from controller.cli import main
from controller.pgfocus import protocol
from controller.pgfocus.protocol import Command, ProtocolError, Stats
from tests.pgfocus.adapter import STATS_TYPES


@pytest.mark.parametrize("line, command", [
    ("v", Command("v")), ("F", Command("f")), ("E", Command("E")), ("e", Command("e")),
    ("offset 64.5", Command("offset", "64.5")), ("offset", Command("offset")),
    ("  MPV 10 ", Command("mpv", "10")), ("version", Command("version")),
])
def test_commands_the_adapter_sends_are_read(line, command):
    assert protocol.parse_command(line) == command


@pytest.mark.parametrize("line", ["", "x", "t", "version 2", "slope 3", "voltage 1",
                                  "\x00", "é", "offset\t1\x07", "v" * 200])
def test_anything_else_is_refused(line):
    with pytest.raises(ProtocolError):
        protocol.parse_command(line)


def test_numbers_are_held_to_the_range_and_text_is_not_zero():
    assert protocol.number("127.9", 0, 128, high_open=True) == 127.9
    for text in ("128", "-0.1", "nan", "inf", "abc", ""):
        with pytest.raises(ProtocolError):
            protocol.number(text, 0, 128, high_open=True)


def test_a_stats_line_has_the_adapters_fields_and_types():
    line = protocol.stats_line(Stats(time_ms=5, loop_us=50_000, dau=8192, offset_px=63.25,
                                     slope=40.95, exposure_us=10_000))
    mode, *words = line.split()
    assert mode == "STATS:"
    values = [kind(word) for kind, word in zip(STATS_TYPES, words, strict=True)]
    assert values == [5, 50_000, 0, 0, 8192, 63.25, 40.95, 10_000, 0, 0]


def test_units_make_the_adapters_nm_the_locks():
    slope = protocol.slope_dau_per_px(0.25, 10)
    one_px_nm = slope / protocol.DAU_PER_VOLT * 10 * 1000  # the adapter's "nM" per pixel
    assert one_px_nm == pytest.approx(250)
    assert protocol.um_from_px(protocol.px_from_um(-3.5, 0.25), 0.25) == pytest.approx(-3.5)
    assert protocol.px_from_um(0.0, 0.25) == 64
    dau = protocol.dau_from_z(12.3, 10)
    assert (dau / 16384 * 10 - 5) * 10 == pytest.approx(12.3, abs=0.01)  # "Output nM" / 1000
    assert protocol.dau_from_z(1e6, 10) == 16383 and protocol.dau_from_z(-1e6, 10) == 0


def test_reply_lines_end_as_the_adapter_expects_and_hold_no_line_end():
    assert protocol.reply([protocol.error("a\r\nb"), "OK"]) == b"ERROR: a  b\r\nOK\r\n"


def test_the_command_needs_a_serial_device(capsys):
    assert main(["pgfocus"]) == 2
    assert "give --port or set pgfocus.port" in capsys.readouterr().err

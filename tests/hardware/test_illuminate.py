"""The illuminate LED array as the illuminator: the driver against the fake array behind a real
pty (controller/sim/illuminate.py): the geometry it reads, how patterns land on LEDs and are
refused, LEDs off on close and on every fault, and the loop on the virtual microscope lit by it."""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable, Iterator

import pytest

from controller.config import Config, FocusSettings, IlluminatorSettings, config_from_dict
from controller.hardware.illuminate import IlluminateArray, IlluminateError, serial_port_opener
from controller.hardware.rig import Rig, open_rig
from controller.lock_runner import LockRunner
from controller.loop import FocusLoop, LoopState
from controller.model import DEFAULT_BUNDLE, FocusModel
from controller.optics import Led, Pattern, preset
from controller.sensing import NetworkSensor
from controller.sim.illuminate import FakeIlluminate, fit_fake_illuminate
from controller.sim.rigs import virtual_rig
from tests.loop.doubles import OraclePredictor

PAPER = preset("paper")
WAIT_S = 10.0  # generous: the fake answers within milliseconds


def eventually(condition: Callable[[], bool]) -> bool:
    """Whether the condition holds within WAIT_S (the fake runs on its own thread)."""
    done = threading.Event()
    for _ in range(int(WAIT_S / 0.01)):
        if condition():
            return True
        done.wait(0.01)
    return condition()


@pytest.fixture
def fake() -> Iterator[FakeIlluminate]:
    fake = FakeIlluminate(PAPER.leds)
    yield fake
    fake.close()


def open_array(fake: FakeIlluminate, **settings: object) -> IlluminateArray:
    config = dataclasses.replace(IlluminatorSettings(), **settings)  # type: ignore[arg-type]
    return IlluminateArray(serial_port_opener(fake.port), config).open()


# -- geometry ------------------------------------------------------------------------------

def test_the_geometry_is_read_from_the_array_in_the_projects_convention(fake):
    array = open_array(fake)
    assert fake.commands[:3] == ["machine", "ac.0", "x"]
    assert len(array.leds) == len(PAPER.leds)
    for number, na in fake.nas.items():  # the fake numbers its LEDs its own way
        assert array.leds[number] == pytest.approx(na, abs=0.0006)  # printed to 3 decimals
    system = array.fitted(PAPER)
    assert len(system.leds) == len(PAPER.leds)
    assert system.autofocus.is_close(PAPER.autofocus, tol_na=0.001)
    assert system.ground_truth.is_close(PAPER.ground_truth, tol_na=0.001)
    array.close()


def test_a_mirrored_array_is_turned_into_image_axes(fake):
    array = open_array(fake, orientation="-x,y")
    for number, (na_x, na_y) in fake.nas.items():
        assert array.leds[number] == pytest.approx((-na_x, na_y), abs=0.0006)
    array.close()


# -- patterns ------------------------------------------------------------------------------

def test_the_autofocus_led_is_the_one_nearest_its_na(fake):
    array = open_array(fake)
    array.show(PAPER.autofocus)
    (placement,) = array.placements(PAPER.autofocus)
    assert fake.lit == {placement.led: 255} and placement.off_na < 0.001
    assert math.hypot(*fake.nas[placement.led]) == pytest.approx(0.371, abs=0.001)
    assert "LED" in str(placement) and "off" in str(placement)
    array.off()
    assert fake.lit == {}
    array.close()


def test_the_half_annulus_keeps_its_brightness_steps(fake):
    array = open_array(fake)
    array.show(PAPER.ground_truth)
    placed = array.placements(PAPER.ground_truth)
    assert set(fake.lit) == {p.led for p in placed}
    brightest = max(p.wanted.brightness for p in placed)
    for p in placed:
        assert fake.lit[p.led] == round(255 * p.wanted.brightness / brightest)
    assert all(len(c) <= 60 for c in fake.commands)  # each line arrives in one USB packet
    array.close()


def test_a_pattern_the_array_does_not_have_is_refused_naming_the_nearest(fake):
    array = open_array(fake)
    sent = len(fake.commands)
    with pytest.raises(IlluminateError, match=r"NA \(\+0\.123, \+0\.456\).*nearest is LED \d+ "
                                              r"at NA .* off"):
        array.show(Pattern("impossible", (Led(0.123, 0.456),)))
    with pytest.raises(IlluminateError, match="colour"):
        array.show(Pattern("red", (Led(0.0, 0.371, 1.0, 0.625),)))
    assert len(fake.commands) == sent  # nothing sent for a refused pattern
    array.show(PAPER.autofocus)  # a refusal is not a fault
    array.close()


def test_the_preset_is_refused_on_an_array_without_its_leds():
    sparse = dataclasses.replace(PAPER.leds, positions_mm=PAPER.leds.positions_mm[::2])
    fake = FakeIlluminate(sparse)
    try:
        array = open_array(fake)
        with pytest.raises(IlluminateError,
                           match=r"pattern .* asks for an LED at NA .* nearest is LED"):
            array.fitted(PAPER)
        array.close()
    finally:
        fake.close()


# -- off on close and on fault -------------------------------------------------------------

def test_close_switches_the_leds_off(fake):
    array = open_array(fake)
    array.show(PAPER.ground_truth)
    array.close()
    assert fake.lit == {} and fake.commands[-1] == "x"


@pytest.mark.parametrize(("knob", "message"), [
    ("garbage_next", "garbage in the reply"),
    ("drop_terminator_next", "no reply ending in -==-"),
])
def test_a_bad_reply_faults_turns_the_leds_off_and_sends_nothing_more(fake, knob, message):
    array = open_array(fake)
    array.show(PAPER.autofocus)
    setattr(fake, knob, True)
    before = len(fake.commands)
    with pytest.raises(IlluminateError, match=f"{message}.*LEDs commanded off"):
        array.show(PAPER.ground_truth)
    # the pattern's own clear, whose reply is spoilt, then the fault's off: waiting for the LEDs
    # to be dark alone would pass on the first, before the second has arrived
    assert eventually(lambda: fake.commands[before:] == ["x", "x"])
    assert fake.lit == {}
    sent = len(fake.commands)
    with pytest.raises(IlluminateError, match=r"stopped after a fault.*reopen"):
        array.show(PAPER.autofocus)
    assert len(fake.commands) == sent
    array.open().show(PAPER.autofocus)  # reopening starts clean
    assert len(fake.lit) == 1
    array.close()


def test_an_unanswered_command_is_a_fault(fake):
    array = open_array(fake)
    fake.silent = True
    with pytest.raises(IlluminateError, match="no reply"):
        array.off()
    assert array.fault is not None
    array.close()


def test_an_unplugged_array_is_a_clear_fault(fake):
    array = open_array(fake)
    fake.unplug()
    with pytest.raises(IlluminateError, match=r"unplugged|no reply"):
        array.show(PAPER.autofocus)
    array.close()  # no further command, no exception


def test_a_refused_command_is_a_fault(fake):
    array = open_array(fake)
    with pytest.raises(IlluminateError, match=r"refused 'dance'.*not implemented"):
        array._ask("dance", "")
    array.close()


# -- the loop on the virtual microscope, lit by the fake array -----------------------------

ILLUMINATE = {"illuminator": {"backend": "illuminate"},
              "sim": {"frame_size": 128, "start_z_um": 8.0}}


@pytest.fixture
def lit_rig() -> Iterator[tuple[Rig, FakeIlluminate]]:
    config = config_from_dict(ILLUMINATE)
    rig = virtual_rig(PAPER, config.sim, frame_shape=(128, 128))
    fake = fit_fake_illuminate(rig, config)
    yield rig, fake
    rig.close()


def test_open_rig_chooses_the_illuminate_array_by_config():
    rig = open_rig(config_from_dict(ILLUMINATE))
    try:
        assert isinstance(rig.illuminator, IlluminateArray)
        assert len(rig.preset.leds) == len(PAPER.leds)
    finally:
        rig.close()
    assert isinstance(open_rig(Config()).illuminator, type(virtual_rig(PAPER, Config().sim)
                                                           .illuminator))  # default unchanged


def test_the_bundled_model_accepts_the_arrays_autofocus_led(lit_rig):
    rig, _ = lit_rig
    FocusModel.load(DEFAULT_BUNDLE, pattern=rig.preset.autofocus)  # 128² frames: no optics


def test_focus_now_on_the_virtual_microscope_lit_by_the_array(lit_rig):
    rig, fake = lit_rig
    assert rig.scope is not None
    sensor = NetworkSensor(OraclePredictor(rig.scope), rig.preset.autofocus)
    report = FocusLoop.for_rig(rig, sensor, Config()).focus_now(FocusSettings())
    assert report.success and abs(rig.scope.defocus_um()) <= 0.5
    assert fake.lit == {}  # lights off after focusing
    assert sum(c.startswith("l.") for c in fake.commands) >= 1


@pytest.mark.parametrize("knob", ["garbage_next", "drop_terminator_next", "unplug"])
def test_a_faulty_array_stops_the_lock_with_a_clear_report_and_no_move(lit_rig, knob):
    """The lock lights its pattern once and keeps it lit, so a fault shows when it talks to
    the array: at the start here (and at a pattern change or the lights-off at the end)."""
    rig, fake = lit_rig
    assert rig.scope is not None
    sensor = NetworkSensor(OraclePredictor(rig.scope), rig.preset.autofocus)
    if knob == "unplug":
        fake.unplug()
    else:
        setattr(fake, knob, True)
    start = rig.drive.position_um()
    report = LockRunner(FocusLoop.for_rig(rig, sensor, Config())).run(duration_s=30.0)
    assert report.final_state is LoopState.FAULT and not report.ok
    assert "illuminate" in report.reason and "LEDs commanded off" in report.reason
    assert report.counts.moves == 0 and rig.drive.position_um() == start
    if knob != "unplug":
        assert eventually(lambda: fake.lit == {})

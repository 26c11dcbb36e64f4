"""Property-based: every number argument of ``sim``, ``train``, ``evaluate`` and ``train-data``,
given any text a careless or hostile user might type (NaN, infinities, 40-digit integers,
subnormals, hex floats, nothing at all), ends in a clean refusal (exit status 2) or acceptance,
never in a bug report (exit status 1) or a traceback.

Most runs point the command at an output it cannot write or data that does not exist, so valid
numbers end at that check too: this also proves that every number is judged before any work
(a render, a featurised stack, a trained network), which keeps each case cheap. One suite renders
real tiny stacks with the numbers that pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.cli_run import run_cli

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # e.g. coarse camera pixels

NUMBER_TEXT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-10**40, max_value=10**40).map(str),
    st.sampled_from(["nan", "-inf", "+inf", "1e309", "-1e309", "1e-320", "0x1p3", "1_000", "",
                     " 7", "0", "-0", "1", "2", "3", "0.5", "8", "64", "4294967296",
                     "9223372036854775808"]),
)


def budget(examples: int) -> settings:
    """This suite's bound on generated cases; its fixtures (a folder, captured stderr) serve
    every case alike, so sharing them across cases is intended."""
    return settings(max_examples=examples, suppress_health_check=[
        HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

SIM_STACK_OPTIONS = ("--seed", "--noise-seed", "--z-step", "--focus-z", "--size", "--oversample",
                     "--bandwidth-nm", "--led-radius-na", "--na", "--immersion-index",
                     "--wavelength-um", "--magnification", "--camera-pixel-um")
# Options a tiny render takes with any value that passes (frame size and planes stay tiny; a
# huge oversampling is covered by the first suite, where the memory guard refuses it).
RENDERED_OPTIONS = tuple(o for o in SIM_STACK_OPTIONS if o not in ("--size", "--oversample"))
TRAIN_OPTIONS = ("--fine-range-um", "--min-confidence", "--validation-fraction", "--workers",
                 "--depth", "--width", "--dropout", "--learning-rate", "--batch-size",
                 "--max-epochs", "--patience", "--lr-patience", "--output-scale-um", "--seed",
                 "--feature-patch", "--feature-bin-x", "--feature-crop-y", "--feature-crop-x",
                 "--feature-pool-y", "--feature-pool-x", "--feature-log")
TRAIN_DATA_OPTIONS = ("--count", "--seed", "--size", "--z-range", "--z-step")


def options(names: tuple[str, ...], most: int) -> st.SearchStrategy[list[str]]:
    """Up to ``most`` of the named options, each ``--name=TEXT`` (so '-5' stays a value)."""
    return st.dictionaries(st.sampled_from(names), NUMBER_TEXT, min_size=1, max_size=most).map(
        lambda d: [f"{name}={text}" for name, text in d.items()])


@pytest.fixture(scope="module", autouse=True)
def crash_logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A found bug's crash log lands in a folder of this suite's own."""
    state = tmp_path_factory.mktemp("state")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_STATE_HOME", str(state))
        yield state


@pytest.fixture(scope="module")
def nowhere(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A path under a regular file: no folder can be made there."""
    blocker = tmp_path_factory.mktemp("numbers") / "a-file"
    blocker.write_text("")
    return blocker / "out"


@budget(300)
@given(extra=options(SIM_STACK_OPTIONS, 3), z_range=st.tuples(NUMBER_TEXT, NUMBER_TEXT))
def test_sim_stack_judges_every_number_before_rendering(nowhere, capsys, extra, z_range):
    code, err = run_cli(["sim", "stack", str(nowhere / "x.ome.tif"), *extra,
                         "--z-range", *z_range], capsys)
    event(f"exit status {code}")
    assert code == 2, err
    assert "rendering plane" not in err


@budget(120)
@given(extra=options(RENDERED_OPTIONS, 2))
def test_sim_stack_renders_or_refuses_any_number_that_a_tiny_stack_takes(tmp_path, capsys,
                                                                         extra):
    code, err = run_cli(["sim", "stack", str(tmp_path / "x.ome.tif"), "--size", "16",
                         "--z-range", "0", "0", *extra], capsys)
    event(f"exit status {code}")
    assert code in (0, 2), err


@budget(100)
@given(extra=options(("--max-planes", "--tile"), 2))
def test_sim_montage_judges_its_numbers(nowhere, capsys, extra):
    code, err = run_cli(["sim", "montage", str(nowhere.parent / "s.ome.tif"),
                         "--out", str(nowhere / "m.png"), *extra], capsys)
    event(f"exit status {code}")
    assert code == 2, err


@budget(300)
@given(extra=options(TRAIN_OPTIONS, 4))
def test_train_judges_every_number_before_reading_data(nowhere, capsys, extra):
    code, err = run_cli(["train", str(nowhere.parent.parent / "no-data"), "--out",
                         str(nowhere.parent.parent / "bundle"), *extra], capsys)
    event(f"exit status {code}")
    assert code == 2, err
    assert not (nowhere.parent.parent / "bundle").exists()


@budget(60)
@given(extra=options(("--workers",), 1))
def test_evaluate_judges_its_numbers(nowhere, capsys, extra):
    code, err = run_cli(["evaluate", str(nowhere.parent / "no-bundle"),
                         str(nowhere.parent / "no-data"), *extra], capsys)
    event(f"exit status {code}")
    assert code == 2, err


@budget(200)
@given(extra=options(TRAIN_DATA_OPTIONS, 3))
def test_train_data_judges_every_number_before_rendering(nowhere, capsys, extra):
    code, err = run_cli(["train-data", str(nowhere), *extra], capsys)
    event(f"exit status {code}")
    assert code == 2, err
    assert "rendering stacks" not in err

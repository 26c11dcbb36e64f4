"""``focuslock config check`` fails on what would fail at start: the model bundle the config
names, the simulated sample, the log folder, the listen address (controller/preflight.py)."""

from pathlib import Path

import pytest

from controller.cli import main
from controller.model import DEFAULT_BUNDLE, RECORD_FILE


def check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`config check` on a config of ``text`` (log_dir in tmp_path unless given): code, output."""
    config = tmp_path / "focuslock.toml"
    if "log_dir" not in text:
        text = f'log_dir = "{tmp_path / "runs"}"\n{text}'
    config.write_text(text)
    code = main(["config", "check", "--config", str(config)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_config_the_machine_can_serve_passes_and_leaves_nothing_behind(tmp_path, capsys):
    code, out = check(tmp_path, '[service]\nhost = "localhost"\n', capsys)
    assert code == 0 and "ok" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["focuslock.toml"]  # no runs/ made


@pytest.mark.parametrize(("text", "message"), [
    ('[sim]\nsample = "plankton"\n', "sim.sample: must be one of 'sparse-cells'"),
    ('[model]\nbundle = "/no/such/bundle"\n',
     "model.bundle: /no/such/bundle: not a model bundle (no record.json)"),
    ('[service]\nhost = "not a host"\n',
     "service.host: 'not a host' is neither an IPv4 address nor a name that resolves to one"),
    ('[service]\nhost = "::1"\n', "service.host: '::1' is neither an IPv4 address"),
    ('[service]\nhost = "192.0.2.1"\n',  # TEST-NET-1: never an address of this machine
     "service.host: cannot listen on '192.0.2.1'"),
    ('log_dir = "/proc/focuslock-runs"\n', "log_dir: cannot write in /proc"),
    ('[optics]\npreset = "pi-hq"\n',  # the bundled model is the paper's
     "model.bundle: model bundle does not fit the configured optics"),
    ('[optics]\npreset = "pi-hq-colour"\n',
     "which read alone with model.bundle = 'none'"),
    ('[optics]\npreset = "paper"\n[model]\nbundle = "none"\n',
     "model.bundle: 'none' leaves the parallax cue alone, which needs parallax.use = 'auto' and "
     "an optics preset with parallax views"),
    ('[optics]\npreset = "paper-pair"\n[parallax]\ncalibration = "/no/such/file.json"\n',
     "parallax.calibration: "),
    # the bundled model's probe pair reads 3 µm probes (the finish fitted into the probe)
    ('[focus]\nprobe_um = 2\nsharpness_finish_um = 1\nsharpness_step_um = 1\n',
     "focus.probe_um: 2 µm, but the model's probe pair network reads probes of 3 µm: set "
     "focus.probe_um = 3"),
    ('[lock]\nprobe_um = 4\n', "lock.probe_um: 4 µm, but the model's probe pair network"),
    ('[focus]\nprobe_um = 2\n', "focus.sharpness_step_um: with focus.sharpness_finish_um it "
                                 "must add up to at most focus.probe_um (2)"),
])
def test_what_would_fail_at_start_fails_at_check(tmp_path, capsys, text, message):
    code, out = check(tmp_path, text, capsys)
    assert code == 2
    assert message in out and len(out.strip().splitlines()) == 1, out


def test_the_colour_retrofit_reading_the_parallax_cue_alone_passes(tmp_path, capsys):
    code, out = check(tmp_path, '[optics]\npreset = "pi-hq-colour"\n[model]\nbundle = "none"\n',
                      capsys)
    assert code == 0 and "optics pi-hq-colour" in out, out


def test_a_log_dir_under_a_file_fails_at_check(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    code, out = check(tmp_path, f'log_dir = "{tmp_path / "file" / "runs"}"\n', capsys)
    assert code == 2 and f"log_dir: {tmp_path / 'file'} is not a folder" in out


@pytest.mark.skipif(not (DEFAULT_BUNDLE / RECORD_FILE).is_file(),
                    reason="the bundled default model (controller/models/default) is not built")
def test_a_bundle_whose_patch_the_simulated_frame_cannot_hold_fails_at_check(tmp_path, capsys):
    code, out = check(tmp_path, f'[model]\nbundle = "{DEFAULT_BUNDLE}"\n[sim]\nframe_size = 256\n',
                      capsys)
    assert code == 2
    assert "model.bundle:" in out and "smaller than one 512x512 feature patch" in out
    assert check(tmp_path, f'[model]\nbundle = "{DEFAULT_BUNDLE}"\n', capsys)[0] == 0


def test_a_config_file_that_is_not_one_is_one_line(tmp_path, capsys):
    (tmp_path / "image.toml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    for path in (tmp_path / "image.toml", tmp_path):
        assert main(["config", "check", "--config", str(path)]) == 2
        err = capsys.readouterr().err
        assert str(path) in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("command", [["serve"], ["focus"]])
def test_the_same_checks_stop_a_command_at_start(tmp_path, capsys, command):
    """serve checks the log folder and the address before it opens anything; focus and lock
    check the log folder before they write their first record."""
    config = tmp_path / "focuslock.toml"
    config.write_text('log_dir = "/proc/focuslock-runs"\n[sim]\nframe_size = 1024\n')
    assert main([*command, "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"focuslock {command[0]}: error: log_dir: cannot write in /proc: ")
    assert len(err.strip().splitlines()) == 1, err

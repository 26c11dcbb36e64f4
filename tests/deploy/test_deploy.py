"""The deploy files: a unit systemd accepts, a udev rule for the board, an installer that stages
a working box layout, and configs the program accepts."""

import dataclasses
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from controller.cli import main
from controller.commands.config import example_toml, to_toml
from controller.config import Config, config_from_dict, load_config
from controller.service.auth import read_token

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_service_unit_passes_systemd_verify(tmp_path):
    # verify insists that ExecStart exists: point it at this checkout's installed command.
    exe = Path(sys.executable).with_name("focuslock")
    unit = (DEPLOY / "focuslock.service").read_text()
    assert "/opt/focuslock/venv/bin/focuslock" in unit
    staged = tmp_path / "focuslock.service"
    staged.write_text(unit.replace("/opt/focuslock/venv/bin/focuslock", str(exe)))
    result = subprocess.run(["systemd-analyze", "verify", str(staged)],
                            capture_output=True, text=True, check=False)
    problems = [line for line in result.stderr.splitlines() if "focuslock.service" in line]
    assert problems == [], result.stderr


def unit_settings() -> dict[str, str]:
    """The [Service] section of the unit as key -> value (the last assignment wins)."""
    settings: dict[str, str] = {}
    section = ""
    for line in (DEPLOY / "focuslock.service").read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings[key] = value
    return settings


def test_unit_runs_the_service_under_the_systemd_watchdog():
    from controller.cli import build_parser
    from controller.commands.serve import run_serve

    unit = unit_settings()
    assert unit["Type"] == "notify"  # started only once `focuslock serve` says READY=1
    assert unit["NotifyAccess"] == "main"  # the pings come from a thread of the main process
    from controller.service.daemon import STALL_AFTER_S

    # systemd restarts a hung loop only after /api/health has said "no progress" for a while,
    # and never during a slow but legitimate step
    assert int(unit["WatchdogSec"]) > STALL_AFTER_S
    assert unit["Restart"] == "on-failure"  # a watchdog kill counts as a failure
    assert "KillSignal" not in unit  # SIGTERM is the service's clean stop (exit 0)
    command = unit["ExecStart"].split()
    assert command[0] == "/opt/focuslock/venv/bin/focuslock"
    args = build_parser().parse_args(command[1:])
    assert args.func is run_serve and str(args.config) == "/etc/focuslock/focuslock.toml"
    box = load_config(DEPLOY / "focuslock.box.toml").service
    assert box.host == "127.0.0.1"  # the API stays on the box unless someone opens it up
    assert box.token_file == "/etc/focuslock/token"  # which the installer makes


def test_udev_rule_names_the_pico_and_the_symlink_the_configs_use():
    rule = (DEPLOY / "99-focuslock.rules").read_text()
    active = [line for line in rule.splitlines() if line and not line.startswith("#")]
    assert len(active) == 1
    assert 'ATTRS{idVendor}=="2e8a"' in active[0] and 'SYMLINK+="focusboard"' in active[0]
    assert load_config(DEPLOY / "focuslock.box.toml").board.port == "/dev/focusboard"


def test_shipped_configs_are_valid(capsys):
    # The example is checked whole, here; the box's config names the box's folders (a log_dir
    # under /var/lib that systemd makes for the service's user), so here its contents only:
    # the installer checks it whole on the box itself.
    assert main(["config", "check", "--config", str(DEPLOY / "focuslock.example.toml")]) == 0
    assert "ok" in capsys.readouterr().out
    assert load_config(DEPLOY / "focuslock.box.toml").board.backend == "serial"


def test_example_config_is_the_one_the_settings_docs_make():
    committed = (DEPLOY / "focuslock.example.toml").read_text()
    assert committed == example_toml(), (
        "deploy/focuslock.example.toml is stale: run "
        "`focuslock config example > deploy/focuslock.example.toml`")


def test_example_config_shows_the_defaults(capsys):
    assert load_config(DEPLOY / "focuslock.example.toml") == Config()
    assert main(["config", "example"]) == 0
    assert capsys.readouterr().out == example_toml()


def test_config_show_round_trips(tmp_path):
    import tomllib

    config = load_config(DEPLOY / "focuslock.box.toml")
    assert config_from_dict(tomllib.loads(to_toml(config))) == config
    odd = dataclasses.replace(config, log_dir="runs\x7f\\ \"é\"")  # DEL: TOML wants it escaped
    assert config_from_dict(tomllib.loads(to_toml(odd))) == odd


def test_config_check_names_a_bad_key(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[lock]\ngian = 0.5\n")
    assert main(["config", "check", "--config", str(bad)]) == 2
    assert "lock.gian: unknown key" in capsys.readouterr().err


def test_config_check_takes_its_file_like_every_command(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["config", "check", str(DEPLOY / "focuslock.box.toml")])
    assert stopped.value.code == 2
    assert "--config" in capsys.readouterr().err


@pytest.mark.slow
def test_installer_stages_a_complete_box(tmp_path):
    root = tmp_path / "root"
    result = subprocess.run(
        ["bash", str(DEPLOY / "install.sh"), "--root", str(root), "--no-start",
         "--python", sys.executable],
        capture_output=True, text=True, check=False, timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (root / "etc/systemd/system/focuslock.service").is_file()
    assert (root / "etc/udev/rules.d/99-focuslock.rules").is_file()
    config = root / "etc/focuslock/focuslock.toml"
    assert load_config(config).camera.backend == "picamera2"
    assert load_config(config).service.token_file == "/etc/focuslock/token"
    token_file = root / "etc/focuslock/token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o640  # root and the service's group
    token = read_token(token_file)
    assert len(token) >= 43 and "API token" in result.stdout
    version = subprocess.run([str(root / "opt/focuslock/venv/bin/focuslock"), "--version"],
                             capture_output=True, text=True, check=True)
    assert version.stdout.startswith("focuslock ")
    # the service's page travels with the installed package, not only the source tree
    assert list((root / "opt/focuslock/venv/lib").glob(
        "python3*/site-packages/controller/service/dashboard.html"))
    # A second run upgrades in place and keeps the user's edited config.
    config.write_text(config.read_text() + "\n# edited by the user\n")
    again = subprocess.run(
        ["bash", str(DEPLOY / "install.sh"), "--root", str(root), "--no-start",
         "--python", sys.executable],
        capture_output=True, text=True, check=False, timeout=900,
    )
    assert again.returncode == 0, again.stderr
    assert "edited by the user" in config.read_text()
    assert read_token(token_file) == token  # the clients that hold it keep working
    removed = subprocess.run(["bash", str(DEPLOY / "uninstall.sh"), "--root", str(root)],
                             capture_output=True, text=True, check=False)
    assert removed.returncode == 0, removed.stderr
    assert not (root / "opt/focuslock").exists() and config.exists()
    assert read_token(token_file) == token
    purged = subprocess.run(["bash", str(DEPLOY / "uninstall.sh"), "--root", str(root),
                             "--purge"], capture_output=True, text=True, check=False)
    assert purged.returncode == 0, purged.stderr
    assert not (root / "etc/focuslock").exists()

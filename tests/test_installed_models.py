"""The installed-models area: an install is the whole verified bundle or nothing, a rollback
swaps current and previous back, and a bad bundle leaves what the box reads untouched. Bundles
are copies of the bundled default model, loaded by the controller's real loader."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

import pytest

from controller.cli import main
from controller.config import Config, config_from_dict
from controller.installed_models import (
    CURRENT,
    INSTALL_RECORD,
    LOCK_FILE,
    PREVIOUS,
    InstallError,
    configured_bundle,
    install,
    listing,
    reads_store,
    rollback,
)
from controller.model import DEFAULT_BUNDLE, FocusModel, read_record
from controller.preflight import check_model_bundle
from tests.cli_run import run_cli


def store_config(tmp_path: Path, **model: str) -> Config:
    """The virtual rig at 512² frames (the default bundle's feature patch), reading the store."""
    return config_from_dict({"model": {"bundle": "installed", "store": str(tmp_path / "models"),
                                       **model},
                             "sim": {"frame_size": 512}})


def config_file(tmp_path: Path, config: Config) -> Path:
    path = tmp_path / "box.toml"
    path.write_text(f'[model]\nbundle = "{config.model.bundle}"\n'
                    f'store = "{config.model.store}"\n[sim]\nframe_size = 512\n')
    return path


def bundle_copy(tmp_path: Path, name: str) -> Path:
    """A bundle of its own folder name (the default model's files)."""
    return Path(shutil.copytree(DEFAULT_BUNDLE, tmp_path / "given" / name))


def links(config: Config) -> tuple[str | None, str | None]:
    store = Path(config.model.store)
    return tuple(os.readlink(store / name) if os.path.lexists(store / name) else None
                 for name in (CURRENT, PREVIOUS))  # type: ignore[return-value]


def store_entries(config: Config) -> list[str]:
    return sorted(p.name for p in Path(config.model.store).iterdir())


def test_install_makes_the_bundle_current_and_the_current_one_previous(tmp_path):
    config = store_config(tmp_path)
    assert configured_bundle(config) == DEFAULT_BUNDLE  # nothing installed: the bundled default
    first = install(config, bundle_copy(tmp_path, "first"), note="why: a test")
    assert first.name.endswith("-first") and links(config) == (first.name, None)
    assert configured_bundle(config) == first.path.resolve()  # the folder, not the link
    installed = json.loads((first.path / INSTALL_RECORD).read_text())
    assert installed["note"] == "why: a test"
    assert installed["source"] == str((tmp_path / "given" / "first").resolve())
    # the copy is the bundle: the same record and weights, loadable as the service loads it
    assert read_record(first.path) == read_record(DEFAULT_BUNDLE)
    FocusModel.load(first.path)
    second = install(config, bundle_copy(tmp_path, "second"))
    assert links(config) == (second.name, first.name)
    shown = listing(config)
    assert shown.current is not None and shown.previous is not None
    assert (shown.current.name, shown.previous.name) == (second.name, first.name)
    assert [b.name for b in shown.bundles] == sorted([first.name, second.name])
    assert store_entries(config) == sorted([first.name, second.name, CURRENT, PREVIOUS,
                                            LOCK_FILE])  # no staging debris
    check_model_bundle(config)  # the config check loads the installed bundle


def test_rollback_swaps_current_and_previous_and_a_second_one_swaps_back(tmp_path):
    config = store_config(tmp_path)
    first = install(config, bundle_copy(tmp_path, "first"))
    second = install(config, bundle_copy(tmp_path, "second"))
    assert rollback(config).name == first.name
    assert links(config) == (first.name, second.name)
    assert configured_bundle(config) == first.path.resolve()
    assert rollback(config).name == second.name
    assert links(config) == (second.name, first.name)


def corrupt(bundle: Path) -> None:
    with (bundle / "model.tflite").open("ab") as f:
        f.write(b"\0")


def test_a_corrupt_bundle_is_refused_and_the_current_one_stays(tmp_path):
    config = store_config(tmp_path)
    good = install(config, bundle_copy(tmp_path, "good"))
    bad = bundle_copy(tmp_path, "bad")
    corrupt(bad)
    before = store_entries(config)
    with pytest.raises(InstallError, match=r"not installed: .*checksum .* does not match.*the "
                                           r"current bundle is unchanged"):
        install(config, bad)
    assert links(config) == (good.name, None) and store_entries(config) == before


def test_a_bundle_for_other_optics_is_refused_and_the_current_one_stays(tmp_path):
    config = store_config(tmp_path)
    good = install(config, bundle_copy(tmp_path, "good"))
    other = config_from_dict({"model": {"bundle": "installed", "store": config.model.store},
                              "optics": {"preset": "pi-hq"}})
    with pytest.raises(InstallError, match="does not fit the configured optics"):
        install(other, bundle_copy(tmp_path, "paper-model"))
    assert links(config) == (good.name, None) and len(listing(config).bundles) == 1


def test_what_is_not_a_bundle_is_refused_before_anything_is_made(tmp_path):
    config = store_config(tmp_path)
    (tmp_path / "notes").mkdir()
    with pytest.raises(InstallError, match="not a model bundle"):
        install(config, tmp_path / "notes")
    with pytest.raises(InstallError, match="no such bundle folder"):
        install(config, tmp_path / "nothing")
    assert not Path(config.model.store).exists()


def test_rollback_without_a_previous_or_to_a_corrupt_one_is_refused(tmp_path):
    config = store_config(tmp_path)
    with pytest.raises(InstallError, match="nothing to roll back to"):
        rollback(config)
    first = install(config, bundle_copy(tmp_path, "first"))
    with pytest.raises(InstallError, match="no previous bundle"):
        rollback(config)
    second = install(config, bundle_copy(tmp_path, "second"))
    corrupt(first.path)
    with pytest.raises(InstallError, match=r"not rolled back: .*checksum"):
        rollback(config)
    assert links(config) == (second.name, first.name)


def test_something_put_in_place_of_a_link_is_never_replaced(tmp_path):
    config = store_config(tmp_path)
    install(config, bundle_copy(tmp_path, "first"))
    store = Path(config.model.store)
    (store / PREVIOUS).mkdir()  # made by hand
    with pytest.raises(InstallError, match="not a link"):
        install(config, bundle_copy(tmp_path, "second"))
    assert (store / PREVIOUS).is_dir() and not (store / PREVIOUS).is_symlink()


def test_one_install_at_a_time(tmp_path):
    config = store_config(tmp_path)
    first = install(config, bundle_copy(tmp_path, "first"))
    with (Path(config.model.store) / LOCK_FILE).open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another install holds the store
        with pytest.raises(InstallError, match="another install or rollback is running"):
            install(config, bundle_copy(tmp_path, "second"))
    assert links(config) == (first.name, None)


def test_which_bundle_a_config_reads(tmp_path):
    store = tmp_path / "models"
    named = store_config(tmp_path, bundle=str(store / CURRENT))
    assert reads_store(named) and reads_store(store_config(tmp_path))
    installed = install(named, bundle_copy(tmp_path, "first"))
    assert configured_bundle(named) == installed.path.resolve()
    default = store_config(tmp_path, bundle="")
    assert configured_bundle(default) == DEFAULT_BUNDLE and not reads_store(default)
    assert configured_bundle(config_from_dict({"model": {"bundle": "none"},
                                               "optics": {"preset": "paper-pair"}})) is None


def test_model_commands(tmp_path, capsys):
    config = store_config(tmp_path)
    path = config_file(tmp_path, config)
    assert main(["model", "list", "--config", str(path)]) == 0
    assert "nothing installed yet" in capsys.readouterr().out
    for name in ("first", "second"):
        assert main(["model", "install", str(bundle_copy(tmp_path, name)), "--config",
                     str(path), "--no-reload"]) == 0
    assert main(["model", "list", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    current, previous = links(config)
    assert f"current:  {current}@" in out and f"previous: {previous}@" in out
    assert f"{current}  (current)" in out and "validation RMSE" in out
    assert main(["model", "rollback", "--config", str(path), "--no-reload"]) == 0
    assert links(config) == (previous, current)
    assert f"rolled back to {previous}@" in capsys.readouterr().out
    code, err = run_cli(["model", "install", str(tmp_path), "--config", str(path)], capsys)
    assert code == 2 and err.count("\n") == 1 and "not a model bundle" in err
    assert links(config) == (previous, current)


def test_install_says_when_the_config_does_not_read_the_store(tmp_path, capsys):
    config = store_config(tmp_path, bundle="")
    path = config_file(tmp_path, config)
    assert main(["model", "install", str(bundle_copy(tmp_path, "first")), "--config",
                 str(path)]) == 0
    assert 'set model.bundle = "installed"' in capsys.readouterr().out

"""The installed-models area: the bundles the box was given, the one it reads and the one before
it, so a new bundle goes in atomically and comes out again with one command, without TensorFlow.

Layout (``model.store``; ``/var/lib/focuslock/models`` on the box, docs/calibrate.md)::

    models/
      20250612-141503-tuned/      one folder per install: a copy of the bundle, plus
        installed.json            when, from where, and why (calibrate's before/after RMSE)
      20250610-090211-default/
      current  -> 20250612-141503-tuned      what model.bundle = "installed" reads
      previous -> 20250610-090211-default    what rollback goes back to

Install first loads the bundle with the controller's own loader against the configured optics,
autofocus LEDs and frame (checksums, fit), copies it into a hidden staging folder, loads the copy
the same way, renames it into place, points ``previous`` where ``current`` pointed and then
switches ``current``: each link is replaced by a rename, which is atomic. Nothing the store held
changes before the copy has passed, so a corrupt or unfitting bundle is refused and the box goes
on reading what it read. Rollback swaps the two links after loading the previous bundle the same
way. Folders are never deleted here: every install stays listed. One install or rollback runs at
a time (a lock file).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller import __version__
from controller.config import INSTALLED, NO_MODEL, Config
from controller.errors import FocuslockError
from controller.files import replaced_dir, replaced_symlink, require_writable_dir, sync_dir
from controller.model import DEFAULT_BUNDLE, FocusModel, ModelError, read_record
from controller.optics import Preset
from controller.preflight import configured_system

CURRENT = "current"
PREVIOUS = "previous"
INSTALL_RECORD = "installed.json"
LOCK_FILE = ".lock"


class InstallError(FocuslockError):
    """An install or rollback the store refuses; what the store held is unchanged."""


def configured_bundle(config: Config) -> Path | None:
    """The bundle folder the config reads (None: no network), with links resolved: the folder's
    own name says which bundle it is, a link's name (``current``) does not."""
    bundle = config.model.bundle
    if bundle == NO_MODEL:
        return None
    if bundle == INSTALLED:
        current = Path(config.model.store) / CURRENT
        return current.resolve() if os.path.lexists(current) else DEFAULT_BUNDLE
    return Path(bundle).resolve() if bundle else DEFAULT_BUNDLE


def reads_store(config: Config) -> bool:
    """Whether the config reads the store's current bundle, so that an install or a rollback
    changes what the box reads."""
    bundle = config.model.bundle
    if bundle == INSTALLED:
        return True
    if bundle in ("", NO_MODEL):
        return False
    return os.path.abspath(bundle) == os.path.abspath(Path(config.model.store) / CURRENT)


def bundle_id(folder: Path, record: Mapping[str, Any]) -> str:
    """How the status and the listing name a bundle: its folder's name and the first 12 hex
    digits of its weights' sha256."""
    return f"{folder.name}@{str(record.get('weights_sha256', ''))[:12]}"


@dataclass(frozen=True)
class InstalledBundle:
    """One bundle folder of the store, as the listing shows it."""

    path: Path
    record: Mapping[str, Any] | None  # None: unreadable (``problem`` says why)
    installed: Mapping[str, Any]  # installed.json: when, from where, and the note
    problem: str = ""

    @property
    def name(self) -> str:
        return self.path.name

    def summary(self) -> str:
        """One line: the id, how it was made, its validation RMSE, when and why installed."""
        if self.record is None:
            return f"{self.name}: unusable ({self.problem})"
        record = self.record
        parts = [bundle_id(self.path, record)]
        base = record.get("fine_tuned_from") or {}
        made = f"fine-tuned from {base.get('bundle')}" if base else "trained"
        parts.append(f"{made} on {record.get('data', {}).get('folder', '?')}, "
                     f"{record.get('created_utc', '?')}")
        rmse = record.get("metrics", {}).get("bundle", {}).get("rmse_um")
        if isinstance(rmse, int | float):
            parts.append(f"validation RMSE {rmse:.2f} µm")
        if self.installed:
            parts.append(f"installed {self.installed.get('installed_utc', '?')} from "
                         f"{self.installed.get('source', '?')}")
            if self.installed.get("note"):
                parts.append(str(self.installed["note"]))
        return "; ".join(parts)


@dataclass(frozen=True)
class StoreListing:
    """What ``focuslock model list`` shows."""

    store: Path
    current: InstalledBundle | None
    previous: InstalledBundle | None
    bundles: tuple[InstalledBundle, ...]  # every installed folder, oldest first


def install(config: Config, bundle: Path, *, note: str = "") -> InstalledBundle:
    """Copy ``bundle`` into the store and make it current, the current one previous. Refused
    (InstallError) unless the bundle and its copy load and fit the configured hardware; the
    store's links are then untouched. ``note`` is kept in its install record (why it came)."""
    source = Path(bundle)
    if not source.is_dir():
        raise InstallError(f"{source}: no such bundle folder")
    system = configured_system(config)
    _check(source, system, "not installed")
    store = Path(config.model.store)
    require_writable_dir(store)
    with _locked(store):
        old = _link_target(store, CURRENT)
        _link_target(store, PREVIOUS)  # refuses a folder put there by hand, before any copy
        target = _free_name(store, source.resolve().name)
        try:
            with replaced_dir(target) as staging:
                shutil.copytree(source, staging, dirs_exist_ok=True,
                                ignore=lambda folder, names: [INSTALL_RECORD] * (
                                    INSTALL_RECORD in names))
                _check(staging, system, f"not installed: its copy in {store} failed the check")
                (staging / INSTALL_RECORD).write_text(json.dumps({
                    "installed_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "source": str(source.resolve()), "by": f"focuslock {__version__}",
                    "note": note}, indent=1) + "\n")
                _sync_tree(staging)
        except OSError as exc:
            raise InstallError(f"{source}: not installed: cannot copy it into {store} "
                               f"({exc.strerror or exc}); the current bundle is unchanged") \
                from None
        sync_dir(store)
        if old is not None and (store / old).is_dir():
            replaced_symlink(store / PREVIOUS, old)
        replaced_symlink(store / CURRENT, target.name)
    return describe(target)


def rollback(config: Config) -> InstalledBundle:
    """Make the previous bundle current again, and the current one previous (a second rollback
    undoes the first). Refused when there is none, or when it does not load and fit."""
    store = Path(config.model.store)
    if not store.is_dir():
        raise InstallError(f"{store}: no installed models here (model.store); nothing to roll "
                           f"back to")
    system = configured_system(config)
    with _locked(store):
        current = _link_target(store, CURRENT)
        previous = _link_target(store, PREVIOUS)
        if previous is None:
            raise InstallError(f"{store}: no previous bundle to roll back to")
        _check(store / previous, system, "not rolled back")
        replaced_symlink(store / CURRENT, previous)
        if current is not None:
            replaced_symlink(store / PREVIOUS, current)
    return describe(store / previous)


def listing(config: Config) -> StoreListing:
    """The store's bundles, and which are current and previous (nothing changes)."""
    store = Path(config.model.store)
    if not store.is_dir():
        return StoreListing(store, None, None, ())
    folders = sorted(p for p in store.iterdir()
                     if p.is_dir() and not p.is_symlink() and not p.name.startswith("."))
    return StoreListing(store, _linked(store, CURRENT), _linked(store, PREVIOUS),
                        tuple(describe(p) for p in folders))


def describe(folder: Path) -> InstalledBundle:
    """A bundle folder with its record and install record (a problem instead, if unreadable)."""
    installed: dict[str, Any] = {}
    with suppress(OSError, ValueError):  # not installed by us, or its record lost: nothing shown
        installed = json.loads((folder / INSTALL_RECORD).read_text())
    try:
        return InstalledBundle(folder, read_record(folder), installed)
    except ModelError as exc:
        return InstalledBundle(folder, None, installed, str(exc))


def _check(folder: Path, system: Preset, what: str) -> None:
    """Load ``folder`` as the service would (checksums, and the fit to the configured optics,
    autofocus LEDs and frame); a ModelError becomes an InstallError that starts with ``what``."""
    try:
        FocusModel.load(folder, optics=system.optics, pattern=system.autofocus)
    except ModelError as exc:
        raise InstallError(f"{what}: {exc}; the current bundle is unchanged") from None


def _linked(store: Path, name: str) -> InstalledBundle | None:
    link = store / name
    if not os.path.lexists(link):
        return None
    if not link.is_symlink():
        return InstalledBundle(link, None, {}, "not a link: put there by hand")
    return describe(store / os.readlink(link))


def _link_target(store: Path, name: str) -> str | None:
    """Where the store's link ``name`` points (None: there is no such link)."""
    link = store / name
    if not os.path.lexists(link):
        return None
    if not link.is_symlink():
        raise InstallError(f"{link}: not a link but a file or folder put there by hand; move it "
                           f"away, then try again")
    return os.readlink(link)


def _free_name(store: Path, name: str) -> Path:
    """``store/YYYYmmdd-HHMMSS-name``, with ``-2``, ``-3`` ... for a second install in the same
    second (called under the store's lock, so the name stays free)."""
    base = store / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
    candidate, n = base, 1
    while os.path.lexists(candidate):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def _sync_tree(folder: Path) -> None:
    """Flush every file and folder below ``folder`` to the disk, before a link points at it."""
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as f:
                os.fsync(f.fileno())
        elif path.is_dir():
            sync_dir(path)
    sync_dir(folder)


@contextmanager
def _locked(store: Path) -> Iterator[None]:
    """The store to ourselves: a second install or rollback is refused while one runs."""
    try:
        lock = (store / LOCK_FILE).open("a")
    except OSError as exc:
        raise InstallError(f"{store}: cannot write in the model store ({exc.strerror or exc})") \
            from None
    with lock as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InstallError(f"{store}: another install or rollback is running; try again "
                               f"when it has ended") from None
        yield

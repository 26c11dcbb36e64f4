"""Writing without losing anything: folders no other run shares, and files, folders and links that
appear complete or not at all, with the permissions the user's umask gives (as ``open`` would).

tempfile's ``mkstemp`` and ``mkdtemp`` create 0600 and 0700 entries, private by design: renamed
into place they left users' stacks unreadable to their group. The temporary names here are made
unique by pid and a random token instead, and created by ``open`` and ``mkdir`` (modes 0666 and
0777 less the umask), exclusively, so two writers never share one.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from controller.errors import FocuslockError


class DestinationError(FocuslockError):
    """A place a result cannot be written to."""


def require_writable_dir(folder: Path) -> None:
    """Create ``folder`` if needed and check that files can be made in it: asked before long
    work, so its result has somewhere to go."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DestinationError(f"{folder}: cannot create the folder ({exc.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DestinationError(f"{folder}: no permission to write in it")


def new_dir(path: Path) -> Path:
    """Create ``path``, or ``path-2``, ``path-3`` ... when it is taken, and return it: a folder
    of this run's alone, even beside one that another run made in the same second."""
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate, n = path, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            n += 1
            candidate = path.with_name(f"{path.name}-{n}")


def _temporary_name(path: Path) -> Path:
    """A hidden name beside ``path`` that no other writer picks."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.part")


@contextmanager
def replaced_file(path: Path) -> Iterator[BinaryIO]:
    """A new file open for writing that takes the place of ``path`` when the block ends without
    an error, and is removed when it raises: a reader sees the old file or the whole new one."""
    tmp = _temporary_name(path)
    try:
        with tmp.open("xb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def replaced_dir(path: Path) -> Iterator[Path]:
    """A new empty folder beside ``path`` to fill, switched in place of ``path`` when the block
    ends without an error and removed when it raises. An existing ``path`` is renamed away,
    the new folder renamed in, then the old one removed: never half of either is visible."""
    staging = _temporary_name(path)
    staging.mkdir()
    try:
        yield staging
        if not (path.exists() or path.is_symlink()):
            staging.rename(path)
            return
        old = _temporary_name(path)
        path.rename(old)
        try:
            staging.rename(path)
        except BaseException:
            old.rename(path)
            raise
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        else:
            old.unlink()
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def replaced_symlink(path: Path, target: str) -> None:
    """Make ``path`` a symbolic link to ``target`` in one step: a new link under a temporary
    name renamed over ``path`` (rename is atomic), so a reader of ``path`` finds the old target
    or the new one, never no link. The folder is synced, so the switch outlives a power cut."""
    tmp = _temporary_name(path)
    os.symlink(target, tmp)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sync_dir(path.parent)


def sync_dir(folder: Path) -> None:
    """Flush a folder's entries (new names, renames) to the disk."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

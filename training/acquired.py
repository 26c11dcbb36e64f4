"""Acquired focal stacks where they lie: a folder or an fsspec URL (file://, s3://, gcs:// ...).

A build reads one stack per task. A local file is read where it is; a remote one is first copied
to a temporary file on the worker (a stack at a time, deleted after reading), so the stack reader
(controller/stackio.py) and its checks are the same for every source, and no worker ever holds
more than its own stack. Reading s3:// or gcs:// needs fsspec's package for it (s3fs, gcsfs) on
every worker, with its credentials from the usual places (environment, config files).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from controller.errors import FocuslockError
from controller.stackio import FocalStack, StackFileError, read_stack, read_stack_record
from training.dataset import STACK_SUFFIXES, DatasetError


def _filesystem(url: str) -> tuple[Any, str]:
    """The fsspec file system of a URL (a plain path is a local one) and the path in it."""
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:  # an unknown protocol, or its package missing
        raise DatasetError(f"{url}: cannot read this location ({exc})") from None


def list_stacks(url: str) -> list[tuple[str, str]]:
    """(file name, URL) of every focal-stack file in the folder at ``url``, by name."""
    fs, root = _filesystem(url)
    try:
        if not fs.isdir(root):
            raise DatasetError(f"{url}: no such folder")
        entries = fs.ls(root, detail=False)
    except OSError as exc:
        raise DatasetError(f"{url}: cannot list the folder ({exc})") from None
    found = sorted((PurePosixPath(str(e)).name, str(e)) for e in entries
                   if str(e).endswith(STACK_SUFFIXES))
    if not found:
        raise DatasetError(f"{url}: no focal-stack files (*.ome.tif) in it")
    local = isinstance(fs, LocalFileSystem)
    return [(name, path if local else fs.unstrip_protocol(path)) for name, path in found]


@contextmanager
def local_copy(url: str) -> Iterator[Path]:
    """A local path holding the file at ``url``: the file itself when it is local, else a
    temporary copy removed afterwards."""
    fs, path = _filesystem(url)
    if isinstance(fs, LocalFileSystem):
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="focuslock-stack-") as folder:
        local = Path(folder) / PurePosixPath(path).name
        try:
            fs.get_file(path, str(local))
        except (OSError, FileNotFoundError) as exc:
            raise StackFileError(f"{url}: cannot fetch the stack ({exc})") from None
        try:
            yield local
        except FocuslockError as exc:  # name the stack by its URL, not the temporary copy
            raise type(exc)(str(exc).replace(str(local), url)) from exc


def read_acquired(url: str) -> FocalStack:
    with local_copy(url) as path:
        return read_stack(path)


def read_acquired_record(url: str) -> dict[str, Any]:
    with local_copy(url) as path:
        return read_stack_record(path)


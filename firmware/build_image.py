#!/usr/bin/env python3
"""Build the focus board's flashable image: MicroPython for the Pico with `focusboard` frozen in.

    sudo apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi cmake   # Debian's toolchain
    python3 firmware/build_image.py [--work DIR] [--git-mirror DIR]

It checks out the pinned MicroPython release and the submodules the rp2 port needs at the
commits that release records, freezes `firmware/focusboard` and `firmware/main.py` through
`firmware/image/manifest.py`, builds the RPI_PICO board, and writes
`firmware/image/focusboard-<version>.uf2` and `firmware/image/build-record.json` (the inputs'
commits, the toolchain, the firmware sources' tree hash, the image's sha256).

The sources live in the work directory (default `build/rp2040`, ignored by git) and are fetched
once. `--git-mirror DIR` clones from local bare copies laid out `DIR/<owner>+<name>/repo`
instead of the network. `tests/firmware/test_image.py` checks the committed image against its
record and the record against the sources, so a firmware change without a rebuild fails there.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

FIRMWARE_DIR = Path(__file__).resolve().parent
IMAGE_DIR = FIRMWARE_DIR / "image"
RECORD_PATH = IMAGE_DIR / "build-record.json"
MANIFEST_PATH = IMAGE_DIR / "manifest.py"

MICROPYTHON_URL = "https://github.com/micropython/micropython"
MICROPYTHON_TAG = "v1.28.0"
MICROPYTHON_COMMIT = "e0e9fbb17ed6fd06bb76e266ae554784c9c80804"
BOARD = "RPI_PICO"
# The submodules the rp2 port builds RPI_PICO from (ports/rp2/Makefile and CMakeLists.txt);
# their commits are the ones the MicroPython release records.
SUBMODULES = {
    "lib/pico-sdk": "https://github.com/raspberrypi/pico-sdk",
    "lib/tinyusb": "https://github.com/hathach/tinyusb",
    "lib/micropython-lib": "https://github.com/micropython/micropython-lib",
    "lib/mbedtls": "https://github.com/Mbed-TLS/mbedtls",
}
# pico-sdk 2.x makes the .uf2 with picotool, which it would clone from the network at build time;
# this is the release matching the SDK (2.2.0), cloned with the rest and handed to the SDK.
PICOTOOL_URL = "https://github.com/raspberrypi/picotool"
PICOTOOL_TAG = "2.2.0"
PICOTOOL_COMMIT = "a7eb3988f0645239185fadb4e25d8279478c2dbb"


def firmware_sources() -> list[Path]:
    """What the image freezes: the package's modules (through the protocol symlink), main.py,
    and the manifest that says how."""
    package = sorted((FIRMWARE_DIR / "focusboard").glob("*.py"))
    return [*package, FIRMWARE_DIR / "main.py", MANIFEST_PATH]


def source_tree_hash() -> str:
    """sha256 over each frozen source's path (relative to firmware/) and content sha256."""
    digest = hashlib.sha256()
    for path in firmware_sources():
        name = path.relative_to(FIRMWARE_DIR).as_posix()
        digest.update(f"{name}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def firmware_version() -> str:
    text = (FIRMWARE_DIR / "focusboard" / "__init__.py").read_text()
    found = re.search(r"FIRMWARE_VERSION = \((\d+), (\d+), (\d+)\)", text)
    if found is None:
        raise SystemExit("build_image: FIRMWARE_VERSION not found in focusboard/__init__.py")
    return ".".join(found.groups())


def image_path(version: str) -> Path:
    return IMAGE_DIR / f"focusboard-{version}.uf2"


def run(*command: str | Path, cwd: Path | None = None, show: bool = False,
        env: dict[str, str] | None = None) -> str:
    """Runs a command, echoing it; returns its output, or shows it (a build step) and
    returns ""."""
    print("+", " ".join(str(c) for c in command), flush=True)
    done = subprocess.run([str(c) for c in command], cwd=cwd, check=True, text=True,
                          stdout=None if show else subprocess.PIPE,
                          env={**os.environ, **env} if env else None)
    return done.stdout or ""


def clone_at(url: str, commit: str, dest: Path, mirror: Path | None) -> list[str]:
    """A checkout of `commit` at `dest`, cloned once; later runs only check the commit out.

    A mirror may lack a few large files (chip description files of the RP2350, say); those are
    left out of the checkout and returned, so the record names them. The build fails if it
    needed one."""
    if not (dest / ".git").exists():
        if dest.exists():
            shutil.rmtree(dest)
        owner, name = url.removeprefix("https://github.com/").split("/")
        source = str(mirror / f"{owner}+{name}" / "repo") if mirror else url
        run("git", "clone", "--quiet", "--no-checkout", source, dest)
    absent = missing_blobs(commit, dest)
    if absent:
        run("git", "sparse-checkout", "set", "--no-cone", "/*", *(f"!/{p}" for p in absent),
            cwd=dest)
    run("git", "-c", "advice.detachedHead=false", "checkout", "--quiet", "--force", commit,
        cwd=dest)
    return absent


def missing_blobs(commit: str, repo: Path) -> list[str]:
    """Files of `commit` whose content the clone does not hold."""
    tree = run("git", "ls-tree", "-r", commit, cwd=repo).splitlines()
    blobs = [line.split(None, 3) for line in tree]
    blobs = [entry for entry in blobs if entry[1] == "blob"]
    listing = "".join(f"{entry[2]}\n" for entry in blobs)
    check = subprocess.run(["git", "cat-file", "--batch-check"], cwd=repo, input=listing,
                           stdout=subprocess.PIPE, text=True, check=True).stdout.splitlines()
    return [entry[3] for entry, line in zip(blobs, check, strict=True) if line.endswith("missing")]


def fetch_sources(work: Path, mirror: Path | None) -> tuple[dict[str, str], dict[str, list[str]]]:
    """MicroPython at the pinned commit plus its rp2 submodules: path -> commit, and the files
    a mirror lacked."""
    mpy = work / "micropython"
    absent = {"micropython": clone_at(MICROPYTHON_URL, MICROPYTHON_COMMIT, mpy, mirror)}
    commits = {"micropython": MICROPYTHON_COMMIT}
    for path, url in SUBMODULES.items():
        entry = run("git", "ls-tree", MICROPYTHON_COMMIT, path, cwd=mpy).split()
        commit = entry[2]
        absent[path] = clone_at(url, commit, mpy / path, mirror)
        commits[path] = commit
    absent["picotool"] = clone_at(PICOTOOL_URL, PICOTOOL_COMMIT, work / "picotool", mirror)
    commits["picotool"] = PICOTOOL_COMMIT
    return commits, {path: files for path, files in absent.items() if files}


def toolchain_version() -> str:
    return run("arm-none-eabi-gcc", "--version").splitlines()[0]


def build(work: Path, jobs: int) -> Path:
    mpy = work / "micropython"
    run("make", "-C", mpy / "mpy-cross", f"-j{jobs}", show=True)
    build_dir = work / f"build-{BOARD}"
    # The rp2 Makefile appends its own CMake arguments to these.
    picotool = (f"-DPICOTOOL_GIT_REPOSITORY_URL={work / 'picotool'} "
                f"-DPICOTOOL_GIT_BRANCH={PICOTOOL_COMMIT}")
    run("make", "-C", mpy / "ports" / "rp2", f"-j{jobs}", f"BOARD={BOARD}",
        f"BUILD={build_dir}", f"FROZEN_MANIFEST={MANIFEST_PATH}", show=True,
        env={"CMAKE_ARGS": picotool})
    return build_dir / "firmware.uf2"


def write_record(uf2: Path, version: str, commits: dict[str, str],
                 absent: dict[str, list[str]], toolchain: str) -> dict:
    record = {
        "firmware_version": version,
        "image": uf2.name,
        "image_sha256": file_sha256(uf2),
        "board": BOARD,
        "micropython_tag": MICROPYTHON_TAG,
        "micropython_commit": commits.pop("micropython"),
        "picotool_tag": PICOTOOL_TAG,
        "source_commits": commits,
        "left_out_of_checkout": absent,
        "toolchain": toolchain,
        "focusboard_tree_sha256": source_tree_hash(),
        "built_by": "python3 firmware/build_image.py",
    }
    RECORD_PATH.write_text(json.dumps(record, indent=2) + "\n")
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=FIRMWARE_DIR.parent / "build" / "rp2040",
                        help="where the sources are fetched and built (not in git)")
    parser.add_argument("--git-mirror", type=Path,
                        help="clone from DIR/<owner>+<name>/repo instead of the network")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    if shutil.which("arm-none-eabi-gcc") is None:
        sys.exit("build_image: arm-none-eabi-gcc missing; "
                 "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi cmake")
    args.work.mkdir(parents=True, exist_ok=True)
    version = firmware_version()
    commits, absent = fetch_sources(args.work.resolve(), args.git_mirror)
    built = build(args.work.resolve(), args.jobs)
    target = image_path(version)
    for old in IMAGE_DIR.glob("focusboard-*.uf2"):
        old.unlink()
    shutil.copyfile(built, target)
    record = write_record(target, version, commits, absent, toolchain_version())
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()

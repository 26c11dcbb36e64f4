"""The committed RP2040 image is the one its build record describes, built from today's firmware.

`firmware/build_image.py` writes the image and the record together; these checks fail when the
image was replaced by hand or the firmware sources changed without a rebuild.
"""

import json

from firmware import build_image

REBUILD = "rebuild the image: python3 firmware/build_image.py (see firmware/README.md)"


def record() -> dict:
    return json.loads(build_image.RECORD_PATH.read_text())


def test_the_committed_image_matches_its_record():
    recorded = record()
    image = build_image.IMAGE_DIR / recorded["image"]
    assert image.is_file(), f"{image} is missing; {REBUILD}"
    assert build_image.file_sha256(image) == recorded["image_sha256"], (
        f"{image.name} is not the image its build record describes; {REBUILD}")
    assert sorted(build_image.IMAGE_DIR.glob("*.uf2")) == [image], "one image, the recorded one"


def test_the_image_was_built_from_the_current_firmware_sources():
    recorded = record()
    assert recorded["focusboard_tree_sha256"] == build_image.source_tree_hash(), (
        "firmware/focusboard, main.py or the manifest changed since the image was built; "
        + REBUILD)
    assert recorded["firmware_version"] == build_image.firmware_version(), REBUILD
    assert recorded["image"] == build_image.image_path(recorded["firmware_version"]).name


def test_the_record_pins_every_input():
    recorded = record()
    assert recorded["micropython_tag"] == build_image.MICROPYTHON_TAG
    assert recorded["micropython_commit"] == build_image.MICROPYTHON_COMMIT
    assert set(recorded["source_commits"]) == {*build_image.SUBMODULES, "picotool"}
    assert all(len(commit) == 40 for commit in recorded["source_commits"].values())
    assert recorded["toolchain"].startswith("arm-none-eabi-gcc")

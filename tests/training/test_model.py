"""Model bundles the controller must refuse: corrupt, incomplete, or made for other hardware."""

import dataclasses
import json
import shutil

import pytest

from controller.model import FocusModel, ModelError
from controller.optics import preset

pytestmark = [pytest.mark.training, pytest.mark.slow]


@pytest.fixture
def copy(bundle, tmp_path):
    target = tmp_path / "bundle"
    shutil.copytree(bundle, target)
    return target


def test_corrupt_weights_are_refused(copy):
    data = bytearray((copy / "model.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.tflite").write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"checksum .* does not match .*corrupt or replaced"):
        FocusModel.load(copy)


def test_corrupt_fine_network_is_refused(tuned_bundle, tmp_path):
    copy = shutil.copytree(tuned_bundle, tmp_path / "tuned")
    (copy / "fine.tflite").write_bytes(b"TFL3" + bytes(100))
    with pytest.raises(ModelError, match=r"fine\.tflite: checksum"):
        FocusModel.load(copy)


def test_missing_parts_are_named(copy, tmp_path):
    (copy / "model.tflite").unlink()
    with pytest.raises(ModelError, match=r"no model\.tflite"):
        FocusModel.load(copy)
    with pytest.raises(ModelError, match="not a model bundle"):
        FocusModel.load(tmp_path)
    (copy / "record.json").write_text("{not json")
    with pytest.raises(ModelError, match="unreadable record"):
        FocusModel.load(copy)


def test_other_optics_are_refused_naming_the_difference(bundle):
    p = preset("paper")
    with pytest.raises(ModelError, match=r"optics: NA 0\.4 \(trained for 0\.5\)"):
        FocusModel.load(bundle, optics=dataclasses.replace(p.optics, na=0.4))
    with pytest.raises(ModelError, match=r"pixel size at the sample .* 0\.1625 \(trained for "
                                         r"0\.325"):
        FocusModel.load(bundle, optics=dataclasses.replace(p.optics, magnification=40.0))
    with pytest.raises(ModelError, match="camera: frame of 200x200 pixels is smaller"):
        FocusModel.load(bundle, optics=dataclasses.replace(p.optics, frame_shape=(200, 200)))


def test_other_illumination_is_refused_naming_the_leds(bundle):
    sideways = preset("paper").leds.single(0.35, 0.0)
    with pytest.raises(ModelError, match=r"illumination: 'autofocus' lights LEDs at NA "
                                         r"\(\+0\.371, -?0\.000\), the model was trained for "
                                         r"'autofocus' at NA \(-?0\.000, \+0\.371\)"):
        FocusModel.load(bundle, pattern=sideways)


def test_record_without_feature_spec_is_refused(copy):
    record = json.loads((copy / "record.json").read_text())
    del record["feature_spec"]
    (copy / "record.json").write_text(json.dumps(record))
    with pytest.raises(ModelError, match="feature_spec"):
        FocusModel.load(copy)

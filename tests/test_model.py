"""The bundled default model, as the box loads it: verified, fitted to the paper optics, useful."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from controller.model import (
    DEFAULT_BUNDLE,
    DELEGATE_BANNER,
    FocusModel,
    ModelError,
    without_stderr_line,
)
from controller.optics import preset
from controller.sim.samples import make_sample
from controller.sim.stacks import render_stack


def test_the_bundle_carries_its_confidence_threshold(tmp_path):
    assert FocusModel.load(DEFAULT_BUNDLE).min_confidence == 0.4
    copy = shutil.copytree(DEFAULT_BUNDLE, tmp_path / "bundle")
    record = json.loads((copy / "record.json").read_text())
    (copy / "record.json").write_text(json.dumps({**record, "min_confidence": 1.5}))
    with pytest.raises(ModelError, match=r"min_confidence must be in \[0, 1\], got 1\.5"):
        FocusModel.load(copy)
    del record["min_confidence"]
    (copy / "record.json").write_text(json.dumps(record))
    with pytest.raises(ModelError, match="incomplete or invalid record: 'min_confidence'"):
        FocusModel.load(copy)


def test_loading_and_predicting_print_nothing_on_stderr():
    """LiteRT's delegate banner comes once per process, so a fresh process must show it."""
    script = ("import numpy as np; from controller.model import FocusModel; "
              "FocusModel.load().predict(np.full((1024, 1024), 20000, np.uint16))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True)
    assert result.stderr == ""


def test_only_the_banner_is_kept_from_stderr(capfd):
    def noisy() -> int:
        os.write(2, b"INFO: " + DELEGATE_BANNER + b"\nsomething else\n")
        return 7

    assert without_stderr_line(DELEGATE_BANNER, noisy) == 7
    assert capfd.readouterr().err == "something else\n"


def test_the_bundled_record_and_reports_name_no_folder_of_the_machine_that_made_them():
    def strings(value):
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return [value] if isinstance(value, str) else []

    files = sorted(DEFAULT_BUNDLE.rglob("*.json"))
    assert len(files) == 3  # record.json, report/ and test-report/metrics.json
    for path in files:
        absolute = [s for s in strings(json.loads(path.read_text())) if s.startswith("/")]
        assert absolute == [], path


def test_default_bundle_loads_for_the_paper_optics_and_no_other():
    p = preset("paper")
    model = FocusModel.load(DEFAULT_BUNDLE, optics=p.optics, pattern=p.autofocus)
    assert model.spec.grid(p.optics.frame_shape) == (4, 4)
    low, high = model.defocus_range_um
    assert low < -29 and high > 29
    assert (DEFAULT_BUNDLE / "report" / "pred_vs_true.png").is_file()
    size = sum(f.stat().st_size for f in DEFAULT_BUNDLE.rglob("*") if f.is_file())
    assert size < 2_000_000
    with pytest.raises(ModelError, match="autofocus illumination"):
        FocusModel.load(DEFAULT_BUNDLE, pattern=preset("pi-hq").autofocus)


@pytest.mark.slow
def test_default_bundle_reads_defocus_of_a_new_sample():
    """A sample none of the training stacks showed, 1024² (4 patches), on both sides of focus."""
    p = preset("paper")
    model = FocusModel.load(DEFAULT_BUNDLE, optics=p.optics, pattern=p.autofocus)
    sample = make_sample("sparse-cells", (1024, 1024), p.optics.pixel_um, 777001)
    defocus = np.array([-15.0, -6.0, -1.5, 1.5, 6.0, 15.0])
    stack = render_stack(sample, -defocus, preset=p, patterns=["autofocus"], seed=1)
    predictions = [model.predict(frame) for frame in stack.channel("autofocus")]
    predicted = np.array([pr.defocus_um for pr in predictions])
    assert np.all(np.sign(predicted) == np.sign(defocus))
    # within about three times the held-out RMSE of each |defocus| bin (test-report/)
    tolerance = np.where(np.abs(defocus) <= 2, 1.2, np.where(np.abs(defocus) <= 10, 2.0, 3.0))
    assert np.all(np.abs(predicted - defocus) < tolerance)
    assert [predictions[i].network for i in (0, 2, 3, 5)] == ["main", "fine", "fine", "main"]

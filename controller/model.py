"""The model bundle on the box: load, verify against the hardware, predict the distance to focus.

A bundle is a directory with ``model.tflite`` (full int8: int8 input and output), optionally
``fine.tflite`` (a near-focus network), ``pair-*.tflite`` (the probe pair's network:
controller/probe_pair.py), ``weights.npz`` (float weights, for fine-tuning) and
``record.json`` (how it was made: feature spec, frozen standardisation, the optics and the
autofocus illumination it was trained for, data, code version, hyper-parameters, metrics, the
trained defocus range, the confidence threshold calibrated for it (``min_confidence``), the
network's output columns (``outputs``: the signed defocus, and in bundles since issue 12 the
sign-free distance), the training features' subspace (``familiarity``), the limits calibrated on
unseen sample families (``confidence``: controller/confidence.py) and the sha256 of every
weights file). ``training/export.py`` writes it;
docs/training.md describes it.

API for the focus loop::

    model = FocusModel.load("controller/models/default", optics=preset.optics,
                            pattern=preset.autofocus)        # refuses a bundle that does not fit
    p = model.predict(frame.image)    # a controller.prediction.Prediction, from one 2D frame
    # (model.predict_patches(features) does the same from featurize(frame, model.spec)[0])
    p.defocus_um        # median over patches; move the drive by +defocus_um to focus
    p.confidence        # trusted from model.min_confidence up (the gates check it)
    p.network           # "main", or "fine" when the bundle's near-focus network answered
    p.distance_um, p.sign_ambiguous, p.expected_error_um, p.unfamiliarity   # two-headed bundles
    model.pair          # a PairNetwork where the bundle has one: the sign across a probe move

Inference runs on ai-edge-litert (LiteRT), tflite-runtime being the fallback; TensorFlow is never
imported here.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from controller.confidence import Calibration, Familiarity, sign_ambiguity
from controller.errors import FocuslockError
from controller.features import FeatureError, FeatureSpec, Standardizer, featurize
from controller.optics import Optics, OpticsError, Pattern
from controller.prediction import Prediction
from controller.probe_pair import PairNetwork

BUNDLE_FORMAT = 1
OUTPUTS = ("defocus_um", "distance_um")  # a two-headed network's columns; older bundles: the first
WEIGHTS_FILE = "model.tflite"
RECORD_FILE = "record.json"
DEFAULT_BUNDLE = Path(__file__).parent / "models" / "default"

# How far the bundle's optics may be from the configured ones (relative for sizes, absolute NA).
_REL_TOLERANCE = 0.02
_NA_TOLERANCE = 0.01
# What LiteRT's C++ prints on stderr when an interpreter's first allocation applies its default
# (XNNPACK) delegate; see allocate_quietly.
DELEGATE_BANNER = b"Created TensorFlow Lite XNNPACK delegate for CPU."
_T = TypeVar("_T")
_STDERR_SWAP = threading.Lock()  # one swap of file descriptor 2 at a time


class ModelError(FocuslockError, ValueError):
    """A model bundle that is missing, corrupt, or does not fit the configured hardware."""


def sha256_of(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_record(bundle: str | os.PathLike[str]) -> dict[str, Any]:
    """The bundle's JSON record, checked for its format version (no weights are loaded)."""
    path = Path(bundle) / RECORD_FILE
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{bundle}: not a model bundle (no {RECORD_FILE})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: unreadable record: {exc}") from exc
    if not isinstance(record, dict) or record.get("focuslock_model") != BUNDLE_FORMAT:
        raise ModelError(f"{path}: not a focuslock model record of format {BUNDLE_FORMAT}")
    return record


def check_fit(record: dict[str, Any], optics: Optics | None, pattern: Pattern | None) -> None:
    """Refuse a bundle trained for other optics or another autofocus illumination."""
    trained_optics = Optics.from_dict(record["optics"])
    trained_pattern = Pattern.from_dict(record["illumination"])
    if optics is not None:
        problems = []
        for name, value, trained in (
            ("wavelength_um", optics.wavelength_um, trained_optics.wavelength_um),
            ("pixel size at the sample (µm)", optics.pixel_um, trained_optics.pixel_um),
        ):
            if abs(value - trained) > _REL_TOLERANCE * trained:
                problems.append(f"{name} {value:g} (trained for {trained:g})")
        for name, value, trained in (
            ("NA", optics.na, trained_optics.na),
            ("immersion_index", optics.immersion_index, trained_optics.immersion_index),
        ):
            if abs(value - trained) > _NA_TOLERANCE:
                problems.append(f"{name} {value:g} (trained for {trained:g})")
        if problems:
            raise ModelError("model bundle does not fit the configured optics: "
                             + "; ".join(problems))
        spec = FeatureSpec.from_dict(record["feature_spec"])
        try:
            spec.grid(optics.frame_shape)
        except FeatureError as exc:
            raise ModelError(f"model bundle does not fit the configured camera: {exc}") from exc
    if pattern is not None and not pattern.is_close(trained_pattern):
        raise ModelError(
            f"model bundle does not fit the configured autofocus illumination: "
            f"{pattern.name!r} lights LEDs at NA {_leds(pattern)}, the model was trained for "
            f"{trained_pattern.name!r} at NA {_leds(trained_pattern)}"
        )


def _leds(pattern: Pattern) -> str:
    return ", ".join(f"({led.na_x:+.3f}, {led.na_y:+.3f})" for led in pattern.leds)


def _interpreter(model_path: Path) -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - LiteRT is a dependency on Linux
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise ModelError("no TFLite runtime: install ai-edge-litert (or tflite-runtime)") \
                from None
    try:
        return Interpreter(model_path=str(model_path), num_threads=1)
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"{model_path}: not a loadable TFLite model: {exc}") from exc


def allocate_quietly(interpreter: Any) -> None:
    """``interpreter.allocate_tensors()`` without LiteRT's delegate banner on stderr.

    LiteRT offers no option or log level that stops the line (TF_CPP_MIN_LOG_LEVEL does not),
    and running without the default delegate changes the int8 answers by one step and is
    slower; so the allocation runs with stderr in a temporary file, and all else written there
    meanwhile (another thread's log line) is passed on.
    """
    without_stderr_line(DELEGATE_BANNER, interpreter.allocate_tensors)


def without_stderr_line(line: bytes, call: Callable[[], _T]) -> _T:
    """``call()``, with every line that file descriptor 2 receives meanwhile passed on to it,
    except those containing ``line``."""
    with _STDERR_SWAP, tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            return call()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = b"".join(text for text in captured.read().splitlines(keepends=True)
                            if line not in text)
            if kept:
                os.write(2, kept)


def _verified(path: Path, name: str, sha256: object) -> Path:
    weights = path / name
    if not weights.is_file():
        raise ModelError(f"{path}: no {name} in the bundle")
    actual = sha256_of(weights)
    if actual != sha256:
        raise ModelError(f"{weights}: checksum {actual[:12]}… does not match the record's "
                         f"{str(sha256)[:12]}…: corrupt or replaced")
    return weights


class Int8Network:
    """One full-int8 TFLite network: standardised float features in, one row of µm per row out
    (a column per output)."""

    def __init__(self, model_path: Path, n_features: int, n_outputs: int) -> None:
        self._interpreter = _interpreter(model_path)
        allocate_quietly(self._interpreter)
        inp = self._interpreter.get_input_details()[0]
        out = self._interpreter.get_output_details()[0]
        if inp["dtype"] != np.int8 or out["dtype"] != np.int8:
            raise ModelError(f"{model_path}: must be full int8 (int8 input and output), has "
                             f"{np.dtype(inp['dtype']).name} in, {np.dtype(out['dtype']).name} out")
        if int(inp["shape"][-1]) != n_features:
            raise ModelError(f"{model_path}: the network takes {int(inp['shape'][-1])} inputs, "
                             f"the feature spec makes {n_features}")
        if int(out["shape"][-1]) != n_outputs:
            raise ModelError(f"{model_path}: the network gives {int(out['shape'][-1])} outputs, "
                             f"the record names {n_outputs}")
        self._in_index, self._out_index = inp["index"], out["index"]
        self._in_scale, self._in_zero = inp["quantization"]
        self._out_scale, self._out_zero = out["quantization"]
        self._batch = int(inp["shape"][0])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        q = np.clip(np.round(x / self._in_scale + self._in_zero), -128, 127).astype(np.int8)
        if q.shape[0] != self._batch:
            self._interpreter.resize_tensor_input(self._in_index, [q.shape[0], q.shape[1]])
            self._interpreter.allocate_tensors()
            self._batch = q.shape[0]
        self._interpreter.set_tensor(self._in_index, q)
        self._interpreter.invoke()
        out = self._interpreter.get_tensor(self._out_index).astype(np.float32)
        return ((out - self._out_zero) * self._out_scale).reshape(q.shape[0], -1)


class FocusModel:
    """A verified bundle ready to turn frames into defocus predictions.

    A bundle may hold a second, *fine* network trained only near focus (record key ``fine``):
    when the main network's median says the frame is within ``fine.switch_um`` of focus, the
    fine network's patch predictions are used instead, for a tighter lock. A two-headed bundle
    decides that by its distance head, which does not hedge towards 0 when the sign is unsure.
    """

    def __init__(self, path: Path, record: dict[str, Any]) -> None:
        self.path = path
        self.record = record
        try:
            self.spec = FeatureSpec.from_dict(record["feature_spec"])
            self.standardizer = Standardizer.from_dict(record["standardizer"])
            self.optics = Optics.from_dict(record["optics"])
            self.pattern = Pattern.from_dict(record["illumination"])
            low, high = (float(v) for v in record["defocus_range_um"])
            self.min_confidence = float(record["min_confidence"])
            fine = record.get("fine")
            self.fine_switch_um = float(fine["switch_um"]) if fine else 0.0
            outputs = tuple(record.get("outputs", OUTPUTS[:1]))
            familiarity = record.get("familiarity")
            self.familiarity = None if familiarity is None else Familiarity.from_dict(familiarity)
            calibration = record.get("confidence")
            self.calibration = None if calibration is None else Calibration.from_dict(calibration)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{path}: incomplete or invalid record: {exc}") from exc
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ModelError(f"{path}: min_confidence must be in [0, 1], got "
                             f"{self.min_confidence}")
        if self.standardizer.mean.size != self.spec.n_features:
            raise ModelError(f"{path}: standardisation has {self.standardizer.mean.size} "
                             f"features, the spec makes {self.spec.n_features}")
        if outputs not in (OUTPUTS[:1], OUTPUTS):
            raise ModelError(f"{path}: outputs {list(outputs)}; known: {list(OUTPUTS[:1])} or "
                             f"{list(OUTPUTS)}")
        if self.familiarity is not None and \
                self.familiarity.mean.size != self.spec.n_features:
            raise ModelError(f"{path}: the familiarity subspace has "
                             f"{self.familiarity.mean.size} features, the spec makes "
                             f"{self.spec.n_features}")
        self.has_distance = outputs == OUTPUTS
        self.defocus_range_um = (low, high)
        n_out = len(outputs)
        self._coarse = Int8Network(path / WEIGHTS_FILE, self.spec.n_features, n_out)
        self._fine = Int8Network(path / fine["file"], self.spec.n_features, n_out) if fine \
            else None
        pair = record.get("pair")
        try:
            self.pair = None if pair is None else PairNetwork.from_record(
                pair, path, self.spec.n_features, Int8Network)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{path}: invalid pair network in the record: {exc}") from exc

    @classmethod
    def load(cls, path: str | os.PathLike[str] = DEFAULT_BUNDLE, optics: Optics | None = None,
             pattern: Pattern | None = None) -> FocusModel:
        """Load and verify a bundle: checksums of the weights, and (when given) that it was
        trained for these optics and this autofocus pattern."""
        path = Path(path)
        record = read_record(path)
        _verified(path, WEIGHTS_FILE, record.get("weights_sha256"))
        fine = record.get("fine")
        for extra in (fine, record.get("pair")):
            if isinstance(extra, dict):
                _verified(path, str(extra.get("file")), extra.get("sha256"))
        try:
            check_fit(record, optics, pattern)
        except (KeyError, OpticsError, FeatureError) as exc:
            raise ModelError(f"{path}: invalid optics or illumination in the record: {exc}") \
                from exc
        return cls(path, record)

    def _standardised(self, features: np.ndarray) -> np.ndarray:
        return self.standardizer.apply(
            np.asarray(features, np.float32).reshape(-1, self.spec.n_features))

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        """The main network's outputs (µm; a row per row of raw feature vectors, a column per
        output: the signed defocus, then the distance where the bundle has that head)."""
        return self._coarse(self._standardised(features))

    def predict_patches(self, features: np.ndarray) -> Prediction:
        """The correction for one frame from its patches' raw feature vectors (patches, n)."""
        x = self._standardised(features)
        coarse = self._coarse(x)
        near = float(np.median(coarse[:, -1])) if self.has_distance \
            else abs(float(np.median(coarse[:, 0])))
        if self._fine is not None and near <= self.fine_switch_um:
            prediction = replace(self.combine(self._fine(x), self._scale("fine")),
                                 network="fine")
        else:
            prediction = self.combine(coarse, self._scale("main"))
        return replace(self._judged(prediction, x), patch_features=np.array(features))

    def predict(self, image: np.ndarray) -> Prediction:
        """The correction for one frame, combined over its patches by the median."""
        return self.predict_patches(featurize(image, self.spec)[0])

    def combine(self, patch_out: np.ndarray, spread_scale_um: float | None = None
                ) -> Prediction:
        """Median of the patches (rows; columns: the network's outputs, or one signed value per
        patch); confidence ``exp(-spread / scale)`` falls as they disagree beyond the network's
        own validation error (one patch alone cannot be judged: confidence 0)."""
        out = np.asarray(patch_out, np.float64).reshape(len(patch_out), -1)
        patch_defocus_um = out[:, 0]
        scale = self._scale("main") if spread_scale_um is None else spread_scale_um
        defocus = float(np.median(patch_defocus_um))
        if patch_defocus_um.size < 2:
            spread, confidence = math.nan, 0.0
        else:
            spread = 1.4826 * float(np.median(np.abs(patch_defocus_um - defocus)))
            confidence = math.exp(-spread / scale)
        low, high = self.defocus_range_um
        distance = float(np.median(out[:, 1])) if out.shape[1] > 1 else None
        return Prediction(defocus, confidence, spread, tuple(float(v) for v in patch_defocus_um),
                          low <= defocus <= high, distance_um=distance,
                          sign_ambiguity=sign_ambiguity(defocus, distance))

    def _judged(self, prediction: Prediction, x: np.ndarray) -> Prediction:
        """The prediction with what the bundle's calibration says of it: the features'
        unfamiliarity and its limit, whether the sign is too ambiguous to act on, and the
        error to expect."""
        unfamiliarity = None if self.familiarity is None \
            else float(np.median(self.familiarity.score(x)))
        calibration = self.calibration
        if calibration is None:
            return replace(prediction, unfamiliarity=unfamiliarity)
        ambiguity = prediction.sign_ambiguity
        table = calibration.expected_error
        return replace(
            prediction, unfamiliarity=unfamiliarity,
            max_unfamiliarity=None if unfamiliarity is None
            else calibration.unfamiliarity_limit(prediction.distance),
            sign_ambiguous=ambiguity is not None and calibration.sign_is_ambiguous(ambiguity),
            expected_error_um=None if table is None else table.at(prediction.distance))

    def _scale(self, network: str) -> float:
        """Patch disagreement at which confidence is 1/e: the network's per-patch validation
        RMSE (at least a quarter of a depth of field, so a perfect fit does not make it
        brittle, and for a fine-tuned bundle at least its base's, training/pipeline.py's
        ``patch_rmse_floor``)."""
        metrics = self.record.get("metrics", {}) if network == "main" else \
            self.record.get("fine", {}).get("metrics", {})
        rmse = float(metrics.get("patch_rmse_um", 0.0))
        floor = (self.record.get("fine_tuned_from") or {}).get("patch_rmse_um", {})
        return max(rmse, float(floor.get(network, 0.0)), 0.25 * self.optics.depth_of_field_um)

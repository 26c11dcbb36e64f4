"""Keras model -> TFLite (float32 and full int8) -> the model bundle the box loads.

The int8 model takes int8 input and gives int8 output (no float ops on the box); its quantisation
ranges come from a representative sample of the training features. The bundle directory holds
``model.tflite`` (int8), ``weights.npz`` (the float weights, where fine-tuning starts) and
``record.json`` with sha256 checksums of both and the confidence threshold the controller applies
(layout: controller/model.py).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from controller.files import replaced_file
from controller.model import (
    RECORD_FILE,
    WEIGHTS_FILE,
    FocusModel,
    allocate_quietly,
    read_record,
    sha256_of,
)
from training.network import TrainingError, quiet_tensorflow

FLOAT_WEIGHTS_FILE = "weights.npz"
FINE_FILE = "fine.tflite"
REPRESENTATIVE_ROWS = 500
# The confidence threshold a new bundle carries (record key min_confidence) unless told otherwise.
# Confidence is exp(-patch spread / validation error): the default model's normal frames of cells
# score 0.45..1 (5th percentile 0.51), an empty field 0.35..0.40.
DEFAULT_MIN_CONFIDENCE = 0.4
# The limits a new bundle carries until `focuslock confidence calibrate` sets them from readings of
# sample families it never saw (controller/confidence.py): a signed head below half the distance
# head's reading, and features beyond three times the training data's edge.
DEFAULT_MAX_SIGN_AMBIGUITY = 0.5
DEFAULT_MAX_UNFAMILIARITY = 3.0
FAMILIARITY_COMPONENTS = 16


def to_tflite(model: Any, representative: np.ndarray | None = None) -> bytes:
    """Float32 TFLite, or full int8 (int8 in and out) when representative features are given."""
    quiet_tensorflow()
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if representative is not None:
        rows = representative.astype(np.float32)

        def samples() -> Any:
            for row in rows:
                yield [row[np.newaxis]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = samples
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    with warnings.catch_warnings():
        # the converter warns about statistics it does not need for a model with int8 input
        warnings.simplefilter("ignore")
        content: bytes = converter.convert()
    return content


def representative_positions(n_rows: int, seed: int) -> np.ndarray:
    """Which training rows calibrate the int8 ranges: a seeded sample of REPRESENTATIVE_ROWS."""
    rng = np.random.default_rng(seed)
    return rng.choice(n_rows, min(REPRESENTATIVE_ROWS, n_rows), replace=False)


def run_tflite(content: bytes, x: np.ndarray) -> np.ndarray:
    """Predictions of a TFLite model (float or int8 I/O) for float inputs, in one batch: a row
    per input row, a column per output."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content, num_threads=1)
    inp = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inp["index"], [x.shape[0], x.shape[1]])
    allocate_quietly(interpreter)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    if inp["dtype"] == np.int8:
        scale, zero = inp["quantization"]
        x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
    interpreter.set_tensor(inp["index"], x.astype(inp["dtype"], copy=False))
    interpreter.invoke()
    y = interpreter.get_tensor(out["index"]).astype(np.float32)
    if out["dtype"] == np.int8:
        scale, zero = out["quantization"]
        y = (y - zero) * scale
    return y.reshape(x.shape[0], -1)


def write_bundle(out: Path, int8_model: bytes, weights: dict[str, np.ndarray],
                 record: dict[str, Any], fine_model: bytes | None = None) -> Path:
    """Write the bundle; the record gets the checksums of what was written."""
    out.mkdir(parents=True, exist_ok=True)
    (out / WEIGHTS_FILE).write_bytes(int8_model)
    record = dict(record)
    (out / FINE_FILE).unlink(missing_ok=True)
    if fine_model is not None:
        (out / FINE_FILE).write_bytes(fine_model)
        record["fine"] = {**record["fine"], "sha256": sha256_of(out / FINE_FILE)}
    with open(out / FLOAT_WEIGHTS_FILE, "wb") as f:
        np.savez(f, allow_pickle=False, **weights)
    record["weights_file"] = WEIGHTS_FILE
    record["weights_sha256"] = sha256_of(out / WEIGHTS_FILE)
    record["float_weights_file"] = FLOAT_WEIGHTS_FILE
    record["float_weights_sha256"] = sha256_of(out / FLOAT_WEIGHTS_FILE)
    (out / RECORD_FILE).write_text(json.dumps(record, indent=1) + "\n")
    return out


def load_float_weights(bundle: Path, record: dict[str, Any]) -> dict[str, np.ndarray]:
    """The float weights of a bundle, checked against its record (for fine-tuning)."""
    path = bundle / str(record.get("float_weights_file", FLOAT_WEIGHTS_FILE))
    if not path.is_file():
        raise TrainingError(f"{bundle}: no float weights ({path.name}) to fine-tune from")
    if sha256_of(path) != record.get("float_weights_sha256"):
        raise TrainingError(f"{path}: checksum does not match the record: corrupt or replaced")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def amend_record(bundle: Path, key: str, value: Any) -> dict[str, Any]:
    """The bundle's record with ``key`` set, written atomically, then loaded as the controller
    loads it (a record it would refuse is not left behind unchecked)."""
    record = read_record(bundle)
    record[key] = value
    with replaced_file(bundle / RECORD_FILE) as f:
        f.write((json.dumps(record, indent=1) + "\n").encode())
    FocusModel.load(bundle)
    return record

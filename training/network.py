"""The paper's network, with a second head: a plain MLP from standardised spectrum features to
the signed defocus and the sign-free distance to focus, both in µm.

Dropout on the input only (the features are many and redundant; hidden layers are small), a stack
of ReLU layers, one linear layer with two outputs (``HEADS``), MSE on both, Adam. The distance
head exists because of physics: a thin phase sample's spectrum magnitude is the same at +D and
-D, so |D| is learnable from any sample while the sign depends on the sample's absorption-to-phase
relation. Where the signed head hedges towards 0 and the distance head does not, the sign is
ambiguous (controller/model.py) and the loop finds it by a probe move.

Training stops when the distance head's validation RMSE has not improved for ``patience``
epochs and keeps the best weights (the original exported the last ones). Not the signed head's:
across sample families its error is dominated by signs no network can tell, it stops improving
after a few epochs and stopped the training there (measured on 13 families: the distance head
4.99 -> 4.75 µm, the signed head on cells 5.16 -> 4.77 µm when the distance head is watched).
TensorFlow/Keras is imported by the functions that need it, so importing this module is cheap.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from controller.errors import FocuslockError

if TYPE_CHECKING:
    from training.batches import Batches


HEADS = ("defocus_um", "distance_um")  # the network's output columns, in order
MONITOR = "val_distance_rmse"  # what early stopping and the learning-rate cuts watch


def targets(defocus_um: np.ndarray) -> np.ndarray:
    """What the heads learn for each label: (signed defocus, |defocus|), float32 (rows, 2)."""
    d = np.asarray(defocus_um, np.float32)
    return np.stack([d, np.abs(d)], axis=1)


class TrainingError(FocuslockError, ValueError):
    """Hyper-parameters or data that training cannot use."""


# What a network for one small MLP can use; beyond these a number is a typo (or a network too big
# to build: 10**6 layers of 10**6 units). Chained comparisons refuse NaN, the upper ends infinity.
INTEGER_RANGES = {
    "depth": (1, 100), "width": (1, 10_000), "batch_size": (1, 1 << 20),
    "max_epochs": (1, 1_000_000), "patience": (1, 1_000_000), "lr_patience": (0, 1_000_000),
    "seed": (0, 2**32 - 1),  # what numpy's legacy seeding, which Keras calls, accepts
}
MAX_LEARNING_RATE = 1.0
MAX_OUTPUT_SCALE_UM = 1000.0  # the drive's whole travel


@dataclass(frozen=True)
class HyperParams:
    depth: int = 10  # hidden layers
    width: int = 100  # units per hidden layer
    # on the input features only (paper: 0.6 for 31,314 features; with 384 log features 0.2 gave
    # 3.5 µm validation RMSE against 4.0 for 0.6 and 4.7 without dropout)
    dropout: float = 0.2
    learning_rate: float = 1e-3  # paper: 2e-5 with batches of 25; 3e-4 was worse here (3.8 µm)
    batch_size: int = 256
    max_epochs: int = 300
    patience: int = 20  # epochs without a better validation RMSE before stopping
    # epochs without improvement before the learning rate drops to 30 % (0: never); the
    # validation RMSE of a constant rate wanders by ±0.5 µm from epoch to epoch
    lr_patience: int = 5
    output_scale_um: float = 10.0  # the last layer's output is multiplied by this (µm)
    seed: int = 0

    def __post_init__(self) -> None:
        for name, (low, high) in INTEGER_RANGES.items():
            value = getattr(self, name)
            if not (isinstance(value, int) and low <= value <= high):
                raise TrainingError(f"hyper-parameter {name} must be an integer in "
                                    f"[{low}, {high}], got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise TrainingError(f"hyper-parameter dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 < self.learning_rate <= MAX_LEARNING_RATE:
            raise TrainingError(f"hyper-parameter learning_rate must be in (0, "
                                f"{MAX_LEARNING_RATE:g}], got {self.learning_rate}")
        if not 0.0 < self.output_scale_um <= MAX_OUTPUT_SCALE_UM:
            raise TrainingError(f"hyper-parameter output_scale_um must be in (0, "
                                f"{MAX_OUTPUT_SCALE_UM:g}] µm, got {self.output_scale_um}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HyperParams:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise TrainingError(f"unknown hyper-parameters {sorted(unknown)}")
        return cls(**d)


def quiet_tensorflow() -> None:
    """TensorFlow's C++ start-up chatter buries the progress output; keep errors only."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build(n_inputs: int, hp: HyperParams) -> Any:
    """The uncompiled Keras model."""
    quiet_tensorflow()
    import keras
    import tensorflow as tf

    # the same data and seed give the same model: a bundle's record can be reproduced
    keras.utils.set_random_seed(hp.seed)
    tf.config.experimental.enable_op_determinism()
    layers: list[Any] = [keras.Input(shape=(n_inputs,), name="features")]
    if hp.dropout > 0:
        layers.append(keras.layers.Dropout(hp.dropout))
    layers += [keras.layers.Dense(hp.width, activation="relu") for _ in range(hp.depth)]
    layers += [keras.layers.Dense(len(HEADS)), keras.layers.Rescaling(hp.output_scale_um)]
    return keras.Sequential(layers, name="focuslock_mlp")


@dataclass
class History:
    train_rmse_um: list[float]
    val_rmse_um: list[float]
    best_epoch: int  # 0-based index of the epoch whose weights were kept


def fit(model: Any, hp: HyperParams, train: Batches, val: Batches,
        verbose: int = 2) -> History:
    """Train with early stopping on validation RMSE; the model ends with its best weights.
    The batches (training/batches.py) decide the order of the rows, so Keras shuffles nothing."""
    quiet_tensorflow()
    import keras

    class KerasBatches(keras.utils.PyDataset):
        """``Batches`` as Keras reads them (in order, in this thread)."""

        def __init__(self, batches: Batches) -> None:
            super().__init__()
            self.batches = batches

        def __len__(self) -> int:
            return len(self.batches)

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            return self.batches[index]

        def on_epoch_end(self) -> None:
            self.batches.on_epoch_end()

    class DefocusRmse(keras.metrics.RootMeanSquaredError):
        """RMSE of the signed head alone: what early stopping and the records judge."""

        def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
            return super().update_state(y_true[:, 0], y_pred[:, 0], sample_weight)

    class DistanceRmse(keras.metrics.RootMeanSquaredError):
        """RMSE of the sign-free distance head: what early stopping watches."""

        def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
            return super().update_state(y_true[:, 1], y_pred[:, 1], sample_weight)

    model.compile(optimizer=keras.optimizers.Adam(hp.learning_rate), loss="mse",
                  metrics=[DefocusRmse(name="rmse"), DistanceRmse(name="distance_rmse")])
    stop = keras.callbacks.EarlyStopping(monitor=MONITOR, mode="min", patience=hp.patience,
                                         restore_best_weights=True)
    callbacks = [stop]
    if hp.lr_patience:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor=MONITOR, mode="min", factor=0.3, patience=hp.lr_patience,
            min_lr=hp.learning_rate / 1000))
    with warnings.catch_warnings():
        # Keras converts the plateau callback's new learning rate through a numpy path that
        # numpy 2 flags as deprecated; harmless, and not ours to fix
        warnings.filterwarnings("ignore", message="__array__ implementation doesn't accept",
                                category=DeprecationWarning)
        result = model.fit(KerasBatches(train), validation_data=KerasBatches(val),
                           epochs=hp.max_epochs, shuffle=False, callbacks=callbacks,
                           verbose=verbose)
    val_rmse = np.array(result.history["val_rmse"], np.float64)
    if not np.isfinite(val_rmse).any():
        raise TrainingError(f"training diverged: the validation RMSE was {val_rmse[-1]} in "
                            f"every epoch (learning rate {hp.learning_rate:g}: try a smaller "
                            f"one)")
    watched = np.array(result.history[MONITOR], np.float64)
    best = int(np.nanargmin(np.where(np.isfinite(watched), watched, np.nan)))
    return History([float(v) for v in result.history["rmse"]], val_rmse.tolist(), best)


def weights_to_arrays(model: Any) -> dict[str, np.ndarray]:
    """The float weights, for the bundle (fine-tuning starts from them)."""
    return {f"w{i:02d}": np.asarray(w, np.float32) for i, w in enumerate(model.get_weights())}


def weights_from_arrays(model: Any, arrays: Mapping[str, np.ndarray]) -> None:
    """Start ``model`` from a bundle's float weights. A bundle from before the distance head
    (issue 12; the shipped default is one) has one output column: it gives the signed head, and
    the distance head keeps this model's own initialisation, for the fine-tuning to learn."""
    current = model.get_weights()
    expected = [np.shape(w) for w in current]
    given = [np.asarray(arrays[k]) for k in sorted(arrays)]
    if (len(given) == len(current) and [w.shape for w in given[:-2]] == expected[:-2]
            and given[-2].shape == (expected[-2][0], 1) and given[-1].shape == (1,)):
        given[-2] = np.concatenate([given[-2], current[-2][:, 1:]], axis=1)
        given[-1] = np.concatenate([given[-1], current[-1][1:]])
    if [w.shape for w in given] != expected:
        raise TrainingError("the bundle's float weights do not fit this network "
                            "(different depth, width or number of features)")
    model.set_weights(given)

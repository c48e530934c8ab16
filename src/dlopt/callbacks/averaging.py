"""`optimizer.ema_momentum`: the moving average of the weights swapped in for validation and for
the checkpoints, and swapped out again before the resume state is saved."""

from __future__ import annotations

import keras


class AveragedWeightsIn(keras.callbacks.SwapEMAWeights):
    """With `optimizer.ema_momentum`: the optimizer's moving average of the weights is what gets
    validated (Keras' SwapEMAWeights) and what the epoch-end callbacks between this one and
    AveragedWeightsOut see: the checkpoints and early stopping's best weights. Training and the
    resume state keep Keras' own arrangement, raw weights in the model and the average in the
    optimizer, so a resumed run goes on exactly. After fit() Keras puts the average into the model."""

    def on_epoch_end(self, epoch, logs=None):
        self.on_test_begin()  # Keras' swap-in, as for validation

    def swap_back(self) -> None:
        self.on_test_end()  # Keras' swap-out


class AveragedWeightsOut(keras.callbacks.Callback):
    """Puts the raw weights back after the epoch-end callbacks that save the averaged ones."""

    def __init__(self, swap: AveragedWeightsIn):
        super().__init__()
        self.swap = swap

    def on_epoch_end(self, epoch, logs=None):
        self.swap.swap_back()

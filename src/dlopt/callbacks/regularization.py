"""A regularisation path (`model.c_path`): the penalty moves from strong to weak as training goes,
logistic regression's grid of C walked in one training, each C starting from the last one's weights.
The checkpoint keeps the best epoch, so the run keeps the C its validation data liked best."""

from __future__ import annotations

import keras

from .. import console


class RegularizationPath(keras.callbacks.Callback):
    """Sets the C of every path regularizer in the model (models.tfidf.PathL2) at each epoch's start.
    The C follows from the epoch's number alone, so a resumed run continues on the same stage."""

    def __init__(self, model_config):
        super().__init__()
        self.model_config = model_config

    def on_train_begin(self, logs=None):
        self.regularizers = [variable.regularizer for variable in self.model.trainable_weights if hasattr(getattr(variable, "regularizer", None), "set_c")]
        self.current = None

    def on_epoch_begin(self, epoch, logs=None):
        c = self.model_config.c_at_epoch(epoch)
        if c == self.current:
            return
        for regularizer in self.regularizers:
            regularizer.set_c(c)
        if self.current is not None or epoch:  # the first stage is the model's own C: said once it changes
            console.say(f"model.c_path: C {c:g} from epoch {epoch + 1}")
        self.current = c


def regularization_callbacks(config) -> list:
    """The path's callback, for a model with `model.c_path`."""
    return [RegularizationPath(config.model)] if getattr(config.model, "c_path", None) else []

"""A regularisation path (`model.c_path`): the penalty moves from strong to weak as training goes,
logistic regression's grid of C walked in one training, each C starting from the last one's weights.
The checkpoint weighs each C at its stage's end, so the run keeps the C its validation data liked
best; the path ends early once `model.c_path_patience` values of C in a row did no better."""

from __future__ import annotations

import keras

from .. import console


class RegularizationPath(keras.callbacks.Callback):
    """Sets the C of every path regularizer in the model (models.tfidf.PathL2) at each epoch's start,
    and stops training once `c_path_patience` stages in a row end no better than the best before.
    The C follows from the epoch's number, the stages' scores from metrics.csv's rows, so a resumed
    run continues on the same stage with the same count."""

    def __init__(self, model_config, monitor: str, mode: str, earlier_rows=()):
        super().__init__()
        self.model_config, self.monitor, self.mode = model_config, monitor, mode
        self.stage_scores = [row[monitor] for row in earlier_rows if monitor in row and model_config.judged_epoch(row["epoch"])]

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

    def on_epoch_end(self, epoch, logs=None):
        patience = self.model_config.c_path_patience
        if not patience or self.monitor not in (logs or {}) or not self.model_config.judged_epoch(epoch + 1):
            return
        self.stage_scores.append(logs[self.monitor])
        best = (max if self.mode == "max" else min)(self.stage_scores)
        best_stage = self.stage_scores.index(best)  # the first to reach it: a tie is no better
        if len(self.stage_scores) - 1 - best_stage >= patience and epoch + 1 < self.params.get("epochs", 0):
            console.say(f"model.c_path: stopped after C {self.current:g}: {patience} values of C in a row no better by {self.monitor} than C {self.model_config.c_path[min(best_stage, len(self.model_config.c_path) - 1)]:g}")
            self.model.stop_training = True


def regularization_callbacks(config, monitor: str, mode: str, earlier_rows=()) -> list:
    """The path's callback, for a model with `model.c_path`."""
    return [RegularizationPath(config.model, monitor, mode, earlier_rows)] if getattr(config.model, "c_path", None) else []

"""The config's types and defaults: the root `Config`, one module per section (data.py, model.py,
optim.py, train.py), every field documented.

No TensorFlow here: `dlopt validate` and `dlopt --help` must stay fast. The descriptions are also the
config reference in docs/configuration.md (see `dlopt.config.reference`), so they are the documentation.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .data import *  # noqa: F401,F403  (the sections, importable from here as before)
from .data import DataConfig
from .model import *  # noqa: F401,F403
from .model import ModelConfig
from .optim import *  # noqa: F401,F403
from .optim import Adam, Constant, OptimizerConfig, ScheduleConfig
from .schema_base import Section
from .train import *  # noqa: F401,F403
from .train import CheckpointConfig, DistributeConfig, TrainConfig
from .tracking import MlflowConfig, TrackingConfig  # noqa: F401


MAX_NAME = 200  # + "-YYYYMMDD-HHMMSS-N" stays within a file name's 255 bytes
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$")  # safe in a folder name and a shell word


class Config(Section):
    name: str = Field("run", description="Run name: the run folder is `runs/<name>-<timestamp>`. Letters, digits, `_`, `-`, `.`, `=`, `+`.")
    seed: int = Field(42, description="Seeds Python, NumPy and TensorFlow.")
    data: DataConfig = Field(..., description="Where the examples come from and how they are batched.")
    model: ModelConfig = Field(..., description="Which model to build and its hyper-parameters.")
    optimizer: OptimizerConfig = Field(default_factory=lambda: Adam(type="adam"), description="Optimizer and its hyper-parameters.")
    schedule: ScheduleConfig = Field(default_factory=lambda: Constant(type="constant"), description="Learning-rate schedule.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Loss, metrics and the training loop.")
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig, description="Which checkpoint is `best`.")
    distribute: DistributeConfig = Field(default_factory=DistributeConfig, description="Devices and machines (see `distribute.*`).")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="Experiment tracking besides the run folder (see `tracking.mlflow.*`).")

    @model_validator(mode="after")
    def _consistent(self):
        if self.model.type == "backbone" and (self.data.preprocess.rescale is not None or self.data.preprocess.standardize != "none"):
            raise PydanticCustomError(
                "dlopt_field", "{message}", {"key": "data.preprocess", "message": "model.type backbone applies the backbone's own preprocessing to raw pixels (0-255); remove data.preprocess"}
            )
        bag_of_words = self.model.type == "tfidf" or (self.model.type == "mixed" and self.model.text.type == "tfidf")
        if self.data.text.sequence_length is None and not bag_of_words:
            family = f"model.type {self.model.type}" if self.model.type != "mixed" else f"model.text.type {self.model.text.type}"
            raise PydanticCustomError(
                "dlopt_field", "{message}", {"key": "data.text.sequence_length", "message": f"null (every token) is for model.type tfidf (or a tfidf text encoder); {family} needs a number of tokens"}
            )
        table = self.data.table
        if table is not None and table.outputs is not None:
            if self.model.type != "mixed":
                raise PydanticCustomError("dlopt_field", "{message}", {"key": "data.table.outputs", "message": f"several outputs are for model.type mixed, not {self.model.type}; or predict one column with data.table.label_column"})
            for key, unset in (("loss", "auto"), ("metrics", None)):
                if getattr(self.train, key) != unset:
                    raise PydanticCustomError("dlopt_field", "{message}", {"key": f"train.{key}", "message": f"with data.table.outputs each output names its own {key} (data.table.outputs[i].{key})"})
            if self.data.task != "auto":
                raise PydanticCustomError("dlopt_field", "{message}", {"key": "data.task", "message": "with data.table.outputs each output names its type (data.table.outputs[i].type)"})
        path = getattr(self.model, "c_path", None)
        if path and self.train.epochs < len(path) * self.model.epochs_per_c:
            raise PydanticCustomError(
                "dlopt_field", "{message}",
                {"key": "train.epochs", "message": f"expected at least {len(path) * self.model.epochs_per_c} to walk model.c_path ({len(path)} values x model.epochs_per_c {self.model.epochs_per_c}), got {self.train.epochs}"},
            )
        if self.model.unfreeze_at_epoch is not None and self.model.unfreeze_at_epoch >= self.train.epochs:
            raise PydanticCustomError(
                "dlopt_field", "{message}", {"key": "model.unfreeze_at_epoch", "message": f"expected fewer than train.epochs ({self.train.epochs}), got {self.model.unfreeze_at_epoch}"}
            )
        return self

    @field_validator("name", mode="before")
    @classmethod
    def _name_as_text(cls, name):
        return str(name) if isinstance(name, (int, float)) and not isinstance(name, bool) else name

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        if len(name) > MAX_NAME:
            raise ValueError(f"expected at most {MAX_NAME} characters (a run folder's name adds its time to it, and a file system allows 255), got {len(name)}")
        if not NAME_PATTERN.match(name) or ".." in name:
            raise ValueError(f"expected letters, digits, '_', '-', '.', '=' or '+' (no path separators), got {name!r}")
        return name

"""The `train`, `checkpoint` and `distribute` sections, and the registries of losses and metrics
(`LOSSES`, `METRICS`) with the facts the objective needs about each."""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from ..registry import Registry
from .schema_base import Fraction, NonNegativeFloat, PositiveFloat, PositiveInt, Section, field_error


# losses: the task each is for; classification losses follow the label format the data is fed in
LOSSES: Registry = Registry("loss")
LOSSES.add("sparse_categorical_crossentropy", "dlopt.objectives:cross_entropy", task="classification")
LOSSES.add("categorical_crossentropy", "dlopt.objectives:cross_entropy", task="classification")
LOSSES.add("binary_crossentropy", "dlopt.objectives:cross_entropy", task="classification")
LOSSES.add("mse", "dlopt.objectives:mean_squared_error", task="regression")
LOSSES.add("mae", "dlopt.objectives:mean_absolute_error", task="regression")
LOSSES.add("huber", "dlopt.objectives:huber", task="regression")

# metrics: the task each is for, whether higher is better (for `mode: auto`), and whether Keras
# computes it on one-hot (or binary) labels only, never on sparse class ids
METRICS: Registry = Registry("metric")
METRICS.add("accuracy", "dlopt.objectives:accuracy", task="classification", higher_is_better=True, one_hot=False)
METRICS.add("top_k_accuracy", "dlopt.objectives:top_k_accuracy", task="classification", higher_is_better=True, one_hot=False)
METRICS.add("precision", "dlopt.objectives:precision", task="classification", higher_is_better=True, one_hot=True)
METRICS.add("recall", "dlopt.objectives:recall", task="classification", higher_is_better=True, one_hot=True)
METRICS.add("macro_f1", "dlopt.objectives:macro_f1", task="classification", higher_is_better=True, one_hot=True)
METRICS.add("auc", "dlopt.objectives:auc", task="classification", higher_is_better=True, one_hot=True)
METRICS.add("mae", "dlopt.objectives:mae", task="regression", higher_is_better=False, one_hot=False)
METRICS.add("mse", "dlopt.objectives:mse", task="regression", higher_is_better=False, one_hot=False)
METRICS.add("rmse", "dlopt.objectives:rmse", task="regression", higher_is_better=False, one_hot=False)


class EarlyStopping(Section):
    monitor: str = Field("val_loss", description="Metric watched by early stopping.")
    patience: Annotated[int, Field(ge=0)] = Field(5, description="Epochs without improvement before stopping.")
    min_delta: NonNegativeFloat = Field(0.0, description="Smallest change that counts as improvement.")
    mode: Literal["auto", "min", "max"] = Field("auto", description="Whether the metric should go down or up (`auto`: from its name).")
    restore_best_weights: bool = Field(True, description="End training with the weights of the best epoch.")


class TrainConfig(Section):
    epochs: PositiveInt = Field(10, description="Training epochs.")
    min_steps: Optional[PositiveInt] = Field(
        None,
        description="At least this many optimizer steps: a small data set trains more epochs than `epochs` (max(`epochs`, ceil(min_steps / steps per epoch))), a large one exactly `epochs`; the learning-rate schedule runs over the epochs trained. Unset: `epochs`.",
    )
    loss: LOSSES.literal("auto") = Field(
        "auto",
        description=f"Loss: {LOSSES.listed()}; `auto` picks sparse categorical cross-entropy for classification and MSE for regression.",
    )
    label_smoothing: Fraction = Field(0.0, description="Label smoothing for cross-entropy losses.")
    huber_delta: PositiveFloat = Field(1.0, description="Delta of the Huber loss.")
    metrics: Optional[list[METRICS.literal()]] = Field(
        None,
        description=f"Metrics, from: {', '.join(METRICS)}. {METRICS.listed(METRICS.where(one_hot=True))} are computed on one-hot labels (precision/recall at threshold 0.5, micro-averaged). Unset: `[accuracy]` for classification, `[mae, rmse]` for regression.",
    )
    top_k: PositiveInt = Field(5, description="k of `top_k_accuracy`.")
    early_stopping: Optional[EarlyStopping] = Field(None, description="Early stopping (see `train.early_stopping.*`); unset: off.")
    steps_per_execution: PositiveInt = Field(1, description="Training steps run per call into the TensorFlow graph (more: less Python overhead per step).")
    jit_compile: Union[bool, Literal["auto"]] = Field(
        "auto", description="XLA compilation of the training step. `auto`: off on CPU (several times slower for small convnets there), Keras' choice on GPU."
    )
    mixed_precision: Literal["auto", "none", "mixed_float16", "mixed_bfloat16"] = Field(
        "auto",
        description="Compute in 16-bit floats, keep weights in float32. `auto`: `mixed_float16` on GPUs that run it fast (compute capability 7.0+), `none` elsewhere (on most CPUs 16-bit math is slower; those with AVX-512 BF16 or AMX run `mixed_bfloat16` faster). `mixed_float16` scales the loss against underflow (Keras LossScaleOptimizer); the output layer always computes in float32.",
    )
    threads: Optional[PositiveInt] = Field(None, description="TensorFlow threads per op (intra-op parallelism); unset: one per CPU core.")
    onednn: Union[bool, Literal["auto"]] = Field(
        "auto",
        description="oneDNN kernels for convolutions and matrix products on x86 CPUs (TensorFlow's `TF_ENABLE_ONEDNN_OPTS`, set before TensorFlow starts). `auto`: on, unless that variable is set in the environment; TensorFlow itself turns them on only for some CPUs, and the Fashion-MNIST CNN trains 1.3x faster with them on a 2-core AMD EPYC.",
    )
    progress: Literal["auto", "bar", "lines", "none"] = Field("auto", description="`auto`: a progress bar on a terminal, one line per epoch otherwise.")
    deterministic: Literal["off", "seeded", "strict"] = Field(
        "off",
        description="`off`: weights, data order and augmentation seeded by `seed`, the input pipeline free to run in any order (fastest); `seeded`: also the input pipeline in a fixed order, so the same seed draws the same augmentation; `strict`: also deterministic TensorFlow ops and the resume state kept at epoch ends, so runs repeat bit for bit and a resumed run equals one never stopped. `true`/`false` mean `strict`/`off`. Costs: docs/running.md.",
    )

    @field_validator("deterministic", mode="before")
    @classmethod
    def _tier_from_bool(cls, value):
        return {True: "strict", False: "off"}.get(value, value) if isinstance(value, bool) else value


class CheckpointConfig(Section):
    monitor: str = Field("val_loss", description="Metric that picks `checkpoints/best.keras`.")
    mode: Literal["auto", "min", "max"] = Field("auto", description="Whether `monitor` should go down or up (`auto`: from its name).")
    evaluate: Literal["best", "last"] = Field("best", description="Which weights the final test evaluation uses.")
    backup_every_steps: Optional[PositiveInt] = Field(
        None, description="Also save the `--resume` state every this many training steps (it is always saved at the end of each epoch; `train.deterministic: strict` keeps epoch ends only)."
    )


class DistributeConfig(Section):
    """How training is spread over devices and machines, on tf.distribute."""

    strategy: Literal["default", "mirrored", "multi_worker"] = Field(
        "default",
        description="`default`: one device. `mirrored`: every local GPU (or `devices`), one replica each, gradients all-reduced (tf.distribute.MirroredStrategy). `multi_worker`: several processes or machines (tf.distribute.MultiWorkerMirroredStrategy), each started with the same config and its own `TF_CONFIG`; only the chief writes the run folder.",
    )
    devices: Optional[list[str]] = Field(None, description="`mirrored`: the devices to use, e.g. `[/gpu:0, /gpu:1]`; unset: all GPUs, or the CPU.")
    cpu_devices: Optional[Annotated[int, Field(gt=1)]] = Field(
        None, description="Split the CPU into this many logical devices (one replica each): to try `mirrored` on a machine without GPUs."
    )
    batch_size: Literal["per_replica", "global"] = Field(
        "per_replica",
        description="What `data.batch_size` means: `per_replica` (the global batch is batch_size x replicas, so each device's load stays the same as you scale out) or `global` (split across replicas).",
    )
    scale_learning_rate: Literal["linear", "sqrt", "none"] = Field(
        "linear",
        description="How the learning rate follows the global batch when it grows with the replicas (`per_replica`): `linear` (rate x replicas, Goyal et al. 2017), `sqrt`, or `none`.",
    )
    communication: Literal["auto", "ring", "nccl"] = Field("auto", description="`multi_worker`: the collective implementation (`nccl` for GPUs).")

    @model_validator(mode="after")
    def _consistent(self):
        if self.devices is not None and self.strategy != "mirrored":
            raise field_error("devices", f"only applies with strategy 'mirrored', got '{self.strategy}'")
        if self.devices is not None and not self.devices:
            raise field_error("devices", "expected at least one device, e.g. [/gpu:0]")
        return self

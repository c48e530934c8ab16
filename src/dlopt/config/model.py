"""The `model` section: one config class per family, registered in `MODELS` under its `type`; each
names its builder (`builds`). A `type` no family has is a model your `model.module` registers."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Optional, Union

from pydantic import ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from ..registry import Registry, did_you_mean
from .schema_base import Fraction, NonNegativeFloat, PositiveInt, Section, field_error

ACTIVATIONS = ("relu", "gelu", "elu", "selu", "silu", "swish", "tanh", "sigmoid", "leaky_relu", "linear")
Activation = Literal[ACTIVATIONS]

# the built-in model families, each its config class under its `type`; the union, the `type`
# field's description and the "built in" list of errors are derived from it
MODELS: Registry = Registry("model")


class FreezeUpTo(Section):
    up_to: str = Field(..., description="Freeze every layer up to and including this one, in model order (`model.freeze`).")


class ModelBase(Section):
    dropout: Fraction = Field(
        0.0, description="Dropout rate: after each hidden dense layer (every family), on each recurrent layer's inputs (`lstm`), on attention and feed-forward outputs (`transformer`), on the averaged embedding (`fasttext`), on the pooled phrase features (`textcnn`)."
    )
    batch_norm: bool = Field(False, description="Batch normalisation after each convolution / dense layer, before the activation.")
    batch_norm_momentum: Union[Literal["auto"], Annotated[float, Field(gt=0, lt=1)]] = Field(
        "auto",
        description="Momentum of batch norm's moving mean and variance (what validation and test use). `auto`: 1 - 10 / steps per epoch, within [0.9, 0.99], so the averages span a tenth of an epoch and have settled by the end of the first (Keras' fixed 0.99 leaves them near their initial values for hundreds of steps: validation accuracy 0.2 after 6 epochs of 41 steps).",
    )
    activation: Activation = Field("relu", description=f"Hidden-layer activation: {', '.join(ACTIVATIONS)}.")
    l1: NonNegativeFloat = Field(0.0, description="L1 penalty on every kernel (weights) of conv and dense layers.")
    l2: NonNegativeFloat = Field(0.0, description="L2 penalty on every kernel of conv and dense layers.")
    module: Optional[str] = Field(
        None,
        description="A Python file (`models/mine.py`) or importable module (`mypkg.models`) that registers extra model builders with `@dlopt.models.register('name')`; imported before the model is built.",
    )
    init_from: Optional[str] = Field(
        None,
        description="Fine-tuning: start from the weights of a finished run (its folder: `checkpoints/best.keras`) or of a `.keras` file. Layers are matched by name and shape; layers whose shape differs (e.g. the `head` when the number of classes changed) keep their fresh initialisation and are listed in summary.json.",
    )
    freeze: Union[Literal["none", "all"], list[str], FreezeUpTo] = Field(
        "none",
        description="Layers not trained: `none`, `all` (every layer but the `head`: a linear probe), a list of layer-name patterns (`block0_*`, `dense0`), or `{up_to: LAYER}` (every layer up to and including LAYER, in model order). Frozen batch-norm layers use their moving statistics.",
    )
    pretrained_lr_multiplier: Annotated[float, Field(ge=0, le=1)] = Field(
        1.0,
        description="With `init_from`: the loaded (pretrained), unfrozen layers learn at this fraction of the learning rate; new layers at the full rate (e.g. 0.1). Decoupled weight decay (AdamW) keeps the full rate.",
    )

    unfreeze_at_epoch: Optional[PositiveInt] = Field(
        None,
        description="Two-phase fine-tuning: after this many epochs with `freeze` applied (training the head), unfreeze every layer and train the remaining epochs with a fresh optimizer at `unfreeze_lr_multiplier` x the learning rate. Frozen batch-norm layers stay frozen (inference mode, pretrained statistics).",
    )
    unfreeze_lr_multiplier: Annotated[float, Field(gt=0, le=1)] = Field(0.1, description="Learning-rate factor of the second phase (see `unfreeze_at_epoch`).")

    def uses_tfidf(self) -> bool:
        """Whether the model weights tokens by TF-IDF (the data then counts each token's training texts)."""
        return False

    @model_validator(mode="after")
    def _finetuning_needs_init(self):
        if self.pretrained_lr_multiplier != 1.0 and not self.init_from:
            raise field_error("pretrained_lr_multiplier", "only applies with model.init_from (the pretrained layers it slows down)")
        if self.unfreeze_at_epoch is not None and self.freeze == "none":
            raise field_error("unfreeze_at_epoch", "needs model.freeze (what the first phase keeps frozen), e.g. freeze: all")
        return self


class ConvBlock(Section):
    filters: PositiveInt = Field(..., description="Convolution filters.")
    kernel_size: PositiveInt = Field(3, description="Square kernel size.")
    strides: PositiveInt = Field(1, description="Convolution strides.")
    padding: Literal["same", "valid"] = Field("same", description="Convolution padding.")
    convs: PositiveInt = Field(1, description="Convolutions in the block before pooling.")
    pool: Literal["max", "avg", "none"] = Field("max", description="Pooling after the block.")
    pool_size: PositiveInt = Field(2, description="Pooling window and stride.")
    dropout: Fraction = Field(0.0, description="Dropout after the block.")


@MODELS.section
class CnnConfig(ModelBase):
    """Convolutional network: conv blocks, then a dense head."""

    builds = "dlopt.models.cnn:build_cnn"

    type: Literal["cnn"] = Field("cnn", description="Model family from the registry (see below), or a name your `model.module` registers.")
    blocks: list[ConvBlock] = Field(
        default_factory=lambda: [ConvBlock(filters=32), ConvBlock(filters=64)],
        description="Conv blocks in order (`cnn`); each takes the keys `model.blocks[].*`.",
    )
    global_pool: Literal["flatten", "avg", "max"] = Field("flatten", description="How the last feature map becomes a vector (`cnn`).")
    pool_first: bool = Field(
        False,
        description="Pool right after each block's last conv, before batch norm and activation (`cnn`): those then run on a quarter of the pixels. "
        "For max pooling nearly the same network (a positive-scale norm and ReLU commute with max), measured 1.27x faster training on the Fashion-MNIST CNN.",
    )
    dense: list[PositiveInt] = Field(default_factory=lambda: [128], description="Units of the hidden dense layers of the head (`cnn`, `lstm`, `transformer`).")

    @field_validator("blocks")
    @classmethod
    def _at_least_one_block(cls, blocks):
        if not blocks:
            raise ValueError("expected at least one conv block")
        return blocks


@MODELS.section
class MlpConfig(ModelBase):
    """Multi-layer perceptron: flatten, then dense layers."""

    builds = "dlopt.models.mlp:build_mlp"

    type: Literal["mlp"] = "mlp"
    layers: list[PositiveInt] = Field(default_factory=lambda: [256, 128], description="Units of each hidden dense layer (`mlp`).")


@MODELS.section
class LstmConfig(ModelBase):
    """Stacked recurrent layers over (time, features) inputs or token ids."""

    builds = "dlopt.models.lstm:build_lstm"

    type: Literal["lstm"]
    cell: Literal["lstm", "gru", "rnn"] = Field("lstm", description="Recurrent cell: `lstm`, `gru` or `rnn` (Keras' SimpleRNN, the classic recurrent layer) (`lstm`).")
    units: list[PositiveInt] = Field(default_factory=lambda: [64], description="Units of each stacked recurrent layer; all but the last return sequences to the next (`lstm`).")
    bidirectional: bool = Field(False, description="Read each sequence both ways (`lstm`).")
    recurrent_dropout: Fraction = Field(0.0, description="Dropout on the recurrent state (`lstm`; above 0 Keras cannot use its fused kernel: slower).")
    embedding_dim: PositiveInt = Field(64, description="Token embedding size, used when the inputs are token ids (text) (`lstm`, `transformer` uses `width`).")
    dense: list[PositiveInt] = Field(default_factory=list)


@MODELS.section
class TransformerConfig(ModelBase):
    """A small encoder: token (or feature) + position embedding, N self-attention blocks, pooling."""

    builds = "dlopt.models.transformer:build_transformer"

    type: Literal["transformer"]
    width: PositiveInt = Field(64, description="Model width: embedding and attention size (`transformer`).")
    depth: PositiveInt = Field(2, description="Encoder blocks: self-attention then feed-forward, each with a residual and layer norm (`transformer`).")
    heads: PositiveInt = Field(4, description="Attention heads per block (`transformer`).")
    ff_width: PositiveInt = Field(128, description="Hidden units of each block's feed-forward layer (`transformer`).")
    pooling: Literal["avg", "max", "first"] = Field("avg", description="How the sequence becomes one vector: mean, max or the first position (`transformer`).")
    dense: list[PositiveInt] = Field(default_factory=list)

    @model_validator(mode="after")
    def _heads_divide_width(self):
        if self.width % self.heads:
            raise field_error("heads", f"expected a divisor of width ({self.width}), got {self.heads}")
        return self


@MODELS.section
class FastTextConfig(ModelBase):
    """fastText-style text classifier: token (and n-gram) embeddings averaged into one vector."""

    builds = "dlopt.models.fasttext:build_fasttext"

    type: Literal["fasttext"]
    embedding_dim: PositiveInt = Field(64, description="Token embedding size (`fasttext`).")
    token_dropout: Fraction = Field(
        0.0, description="Drop whole tokens (their embeddings) with this probability before averaging, in training only: word dropout, a regulariser for small text sets (`fasttext`)."
    )
    wide: Union[bool, Literal["tfidf"]] = Field(
        False,
        description="Also a linear model of the tokens (wide & deep), its logits added to the head's: `true` one weight per token and output, averaged over the text like the embeddings; `tfidf` the `tfidf` family's TF-IDF-weighted linear model (`fasttext`).",
    )
    sublinear_tf: bool = Field(True, description="`wide: tfidf`: term frequency as 1 + log(count) (see `tfidf`).")
    dense: list[PositiveInt] = Field(default_factory=list)

    def uses_tfidf(self) -> bool:
        return self.wide == "tfidf"


@MODELS.section
class TfIdfConfig(ModelBase):
    """TF-IDF of words and n-grams into a dense layer: regularised logistic regression, as a Keras model."""

    builds = "dlopt.models.tfidf:build_tfidf"

    type: Literal["tfidf"]
    sublinear_tf: bool = Field(True, description="Term frequency as 1 + log(count), as scikit-learn's `sublinear_tf` (`tfidf`).")
    dense: list[PositiveInt] = Field(default_factory=list, description="Hidden layers after the TF-IDF layer; empty: linear (logistic regression) (`tfidf`).")
    c_path: Optional[list[Annotated[float, Field(gt=0)]]] = Field(
        None,
        description="A regularisation path, as logistic regression's grid of C: the TF-IDF layer trains `epochs_per_c` epochs at each C in turn, "
        "each stage starting from the weights the one before left (list the strongest penalty, the smallest C, first), its L2 penalty "
        "1 / (2 C n) for n training texts (scikit-learn's C, on the mean loss: the same C regularises alike on any size of data); "
        "the best checkpoint weighs the last epoch of each stage by `checkpoint.monitor`, summary.json names the C it kept. Replaces `model.l2` on that layer (`tfidf`).",
    )
    epochs_per_c: PositiveInt = Field(10, description="Epochs at each C of `model.c_path` (`tfidf`).")
    c_path_patience: Optional[PositiveInt] = Field(
        2, description="Early stopping along `model.c_path`: the path ends once this many C in a row are no better by `checkpoint.monitor` (at their stages' ends) than the best before them; null: walk it whole (`tfidf`)."
    )

    def uses_tfidf(self) -> bool:
        return True

    def c_at_epoch(self, epoch: int) -> float | None:
        """The C of `c_path` the epoch (from 0) trains with; after the path, the last."""
        return self.c_path[min(epoch // self.epochs_per_c, len(self.c_path) - 1)] if self.c_path else None

    def judged_epoch(self, epoch: int) -> bool:
        """Whether the best checkpoint weighs this epoch (from 1): along a path only the last of each
        stage, each C trained to its end and compared as a grid search compares them (five judged
        points, not sixty, so validation's noise picks less); every epoch after the path or without one."""
        return not self.c_path or epoch % self.epochs_per_c == 0 or epoch > len(self.c_path) * self.epochs_per_c


@MODELS.section
class TextCnnConfig(ModelBase):
    """1-D convolutional text classifier: parallel convolutions over token embeddings, max over time."""

    builds = "dlopt.models.textcnn:build_textcnn"

    type: Literal["textcnn"]
    embedding_dim: PositiveInt = Field(64, description="Token embedding size (`textcnn`).")
    filters: PositiveInt = Field(128, description="Filters per kernel size (`textcnn`).")
    kernel_sizes: list[PositiveInt] = Field(default_factory=lambda: [3, 4, 5], description="Widths, in tokens, of the parallel convolutions (`textcnn`).")
    token_dropout: Fraction = Field(0.0, description="Drop whole tokens with this probability, in training only (`textcnn`; see `fasttext`).")
    dense: list[PositiveInt] = Field(default_factory=list)


@MODELS.section
class BackboneConfig(ModelBase):
    """A keras.applications image model as the feature extractor, with a new head for the task."""

    builds = "dlopt.models.backbone:build_backbone"

    type: Literal["backbone"]
    name: str = Field("MobileNetV2", description="Any keras.applications image model by its class name: `MobileNetV2`, `EfficientNetB0`, `ResNet50`, ... (`backbone`).")
    weights: Optional[str] = Field(
        "imagenet",
        description="`imagenet` (Keras downloads them once into ~/.keras/models), null (random initialisation), or the path of a weights file for the backbone without its top, e.g. a downloaded `*_notop.h5` (`backbone`).",
    )
    input_size: Optional[Annotated[int, Field(ge=32)]] = Field(
        None, description="Images are resized to input_size x input_size before the backbone (unset: the data's own size) (`backbone`)."
    )
    pooling: Literal["avg", "max"] = Field("avg", description="How the backbone's last feature map becomes a vector (`backbone`).")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Further keyword arguments of the keras.applications constructor, e.g. `{alpha: 0.35}` for a narrower MobileNet (`backbone`)."
    )
    dense: list[PositiveInt] = Field(default_factory=list)


# a text column's encoder in `mixed`: a text family's network up to its head (keys as that family's)
TEXT_ENCODERS = ("fasttext", "tfidf", "textcnn", "lstm", "transformer")
TextEncoder = Annotated[Union[FastTextConfig, TfIdfConfig, TextCnnConfig, LstmConfig, TransformerConfig], Field(discriminator="type")]
ImageEncoder = Annotated[Union[CnnConfig, BackboneConfig], Field(discriminator="type")]
NOT_FOR_ENCODERS = ("module", "init_from", "freeze", "pretrained_lr_multiplier", "unfreeze_at_epoch", "wide", "c_path")


@MODELS.section
class MixedConfig(ModelBase):
    """A table of mixed columns (numbers, categories, text, sets, dates) in one model: an encoder per
    column, combined by concatenation or by a transformer over the columns, then dense layers."""

    builds = "dlopt.models.mixed:build_mixed"
    takes_table_columns: ClassVar[bool] = True  # builds its own input side from the table's raw columns

    type: Literal["mixed"]
    combiner: Literal["concat", "transformer"] = Field(
        "concat",
        description="How the columns' encodings meet: `concat` side by side into the dense layers (Ludwig's concat); `transformer` each column one token of `token_width`, "
        "`depth` self-attention blocks across the columns (as FT-Transformer), flattened into the dense layers (`mixed`).",
    )
    layers: list[PositiveInt] = Field(default_factory=lambda: [256], description="Units of each dense layer after the combiner (`mixed`).")
    one_hot_max: PositiveInt = Field(32, description="A category column of at most this many values is one-hot; a larger one gets an embedding of `embedding_dim` (`mixed`, concat combiner).")
    embedding_dim: PositiveInt = Field(16, description="Embedding size of a category column with more than `one_hot_max` values (`mixed`, concat combiner).")
    text: TextEncoder = Field(
        default_factory=lambda: FastTextConfig(type="fasttext"),
        description=f"The encoder of each text column: `{{type: ..., <its keys>}}`, one of {', '.join(TEXT_ENCODERS)}, with that family's keys (its `dense` layers end the encoder; "
        "`tfidf` needs one: TF-IDF of the words into a hidden layer); the words come from `data.text` (`mixed`).",
    )
    image: ImageEncoder = Field(
        default_factory=lambda: CnnConfig(type="cnn", blocks=[ConvBlock(filters=16), ConvBlock(filters=32)], global_pool="avg", dense=[64]),
        description="The encoder of each image column: `{type: cnn | backbone, <its keys>}` with that family's keys (its `dense` layers end the encoder); the pixels come from `data.image` (`mixed`).",
    )
    token_width: PositiveInt = Field(32, description="Width of each column's token (`mixed`, transformer combiner).")
    depth: PositiveInt = Field(2, description="Self-attention blocks across the columns (`mixed`, transformer combiner).")
    heads: PositiveInt = Field(4, description="Attention heads per block (`mixed`, transformer combiner).")
    ff_width: PositiveInt = Field(64, description="Hidden units of each block's feed-forward layer (`mixed`, transformer combiner).")

    @model_validator(mode="after")
    def _encoder_and_combiner_fit(self):
        if self.token_width % self.heads:
            raise field_error("heads", f"expected a divisor of token_width ({self.token_width}), got {self.heads}")
        for part in ("text", "image"):
            fields = type(getattr(self, part)).model_fields
            for key in NOT_FOR_ENCODERS:
                if key in fields and getattr(getattr(self, part), key) != fields[key].default:
                    whole_model = f"applies to a whole model, not to a column's {part} encoder; set model.{key}"
                    raise field_error(f"{part}.{key}", whole_model if key not in ("wide", "c_path") else "a text encoder ends before any head: it has no wide part or regularisation path")
        if self.text.type == "tfidf" and not self.text.dense:
            raise field_error("text.dense", "a tfidf text encoder needs a hidden layer, e.g. [256]: the TF-IDF of the words goes into it, and its units are the column's encoding")
        return self

    def uses_tfidf(self) -> bool:
        return self.text.type == "tfidf"


class CustomModelConfig(ModelBase):
    """A model registered by the user's module; its extra keys go to the builder as they are."""

    model_config = ConfigDict(extra="allow")
    type: str

    @classmethod
    def _reject_unknown_keys(cls, data):  # every key is the builder's to judge
        return data

    @model_validator(mode="after")
    def _needs_module(self):
        if not self.module:
            hint = did_you_mean(self.type, MODELS)
            raise field_error(
                "type",
                f"unknown model '{self.type}'{hint}; built in: {', '.join(MODELS)} "
                "(set model.module or pass --module to register your own)",
            )
        return self


def _model_tag(data: Any) -> str:
    kind = data.get("type", "cnn") if isinstance(data, dict) else getattr(data, "type", "cnn")
    return kind if kind in MODELS else "custom"


# the `type` field's description lists the families registered above
MODEL_TYPE = f"Model family from the registry: {MODELS.listed()}, or a name your `model.module` registers."
CnnConfig.model_fields["type"].description = MODEL_TYPE

ModelConfig = Annotated[
    Union[tuple(Annotated[cls, Tag(tag)] for tag, cls in [*zip(MODELS.names(), MODELS.entries()), ("custom", CustomModelConfig)])],
    Discriminator(_model_tag),
]

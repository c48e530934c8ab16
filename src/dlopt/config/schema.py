"""The config's types and defaults: one class per section, every field documented.

No TensorFlow here: `dlopt validate` and `dlopt --help` must stay fast. The descriptions below are
also the config reference in docs/configuration.md (see `dlopt.config.reference`), so they are the documentation.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..registry import did_you_mean
from .augment import AugmentOp
from .schema_base import Fraction, NonNegativeFloat, PositiveFloat, PositiveInt, Section, field_error

ACTIVATIONS = ("relu", "gelu", "elu", "selu", "silu", "swish", "tanh", "sigmoid", "leaky_relu", "linear")
Activation = Literal["relu", "gelu", "elu", "selu", "silu", "swish", "tanh", "sigmoid", "leaky_relu", "linear"]


# ----------------------------------------------------------------------------------------- data


class Splits(Section):
    """Which split feeds training, validation and the final test."""

    train: str = Field("train", description="Training split; slicing such as `train[:90%]` or `train[:5000]` works for every source.")
    val: Optional[str] = Field(
        None,
        description="Validation split. Unset: the dataset's `validation` split if it has one, otherwise the last `data.val_fraction` of `train` is carved off (and removed from training).",
    )
    test: Optional[str] = Field("test", description="Test split evaluated at the end of training; null to skip.")


class Preprocess(Section):
    """Preprocessing done inside the model, so a saved model takes raw inputs."""

    rescale: Optional[float] = Field(None, description="Multiply inputs by this factor (e.g. 0.00392156862745098 = 1/255).")
    standardize: Literal["none", "global", "per_channel"] = Field(
        "none",
        description="Subtract the mean and divide by the standard deviation, both computed on the training split only (after `rescale`): one value for all features, or one per channel (last axis).",
    )


FILE_SOURCES = ("idx", "npz", "text_folder", "image_folder", "csv")
# listed in file or folder order (often by class): shuffled before slicing and carving by default
UNORDERED_SOURCES = ("npz", "text_folder", "image_folder", "csv", "sklearn")
SKLEARN_DATASETS = ("digits", "iris", "wine", "breast_cancer", "diabetes")


class ImageConfig(Section):
    """Source `image_folder`: how image files become arrays (decoded and resized in the tf.data pipeline)."""

    size: Optional[Annotated[list[PositiveInt], Field(min_length=2, max_length=2)]] = Field(
        None, description="[height, width] every image is resized to; unset: all images must already share one size."
    )
    color_mode: Literal["grayscale", "rgb", "rgba"] = Field("rgb", description="Channels after decoding: 1 (`grayscale`), 3 (`rgb`) or 4 (`rgba`).")
    interpolation: Literal["bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5", "gaussian", "mitchellcubic"] = Field(
        "bilinear", description="Resizing method (tf.image.resize)."
    )
    crop_to_aspect_ratio: bool = Field(False, description="Crop the centre of each image to the target aspect ratio before resizing, instead of distorting it.")


MISSING_VALUES = ["", "NA", "N/A", "NaN", "nan", "null", "None", "?"]


class TableConfig(Section):
    """Source `csv` as a table: feature columns (numbers or categories) and a label column. The
    preprocessing is learnt from the training split only and saved inside the model, so the model
    takes raw rows. Missing numbers become the training mean plus a 0/1 `missing` feature (for
    columns with gaps in training); a missing category is a category of its own."""

    label_column: str = Field(..., description="The column to predict: class names or ids (classification), or numbers (regression, or see `data.task`).")
    feature_columns: Optional[list[str]] = Field(None, description="Input columns; unset: every column but the label and `ignore_columns`.")
    categorical_columns: Optional[list[str]] = Field(
        None, description="Columns read as categories even when their values are numbers (codes, years); columns with any non-numeric value are categorical anyway."
    )
    ignore_columns: list[str] = Field(default_factory=list, description="Columns never used as features (ids, free text, leaks of the label).")
    missing_values: list[str] = Field(default_factory=lambda: list(MISSING_VALUES), description="Cell values that mean 'missing' (compared after stripping spaces).")
    max_categories: PositiveInt = Field(100, description="Most frequent categories kept per column (from the training split); rarer and unseen ones share one 'other' slot.")


class TextConfig(Section):
    """Text inputs: turned into token ids by a TextVectorization layer adapted on the training split
    only and saved inside the model, so the saved model takes raw text."""

    max_tokens: PositiveInt = Field(20000, description="Vocabulary size, including the padding and out-of-vocabulary tokens.")
    sequence_length: PositiveInt = Field(200, description="Tokens per example: longer texts are cut, shorter ones padded.")
    ngrams: Annotated[int, Field(ge=1, le=3)] = Field(
        1, description="Word n-grams up to this length become tokens too (2: words and bigrams, fastText's trick for word order); they share `max_tokens` and `sequence_length` with the words, which come first."
    )
    min_count: PositiveInt = Field(
        1,
        description="A word or n-gram enters the vocabulary only if at least this many training texts hold it (scikit-learn's `min_df`); "
        "rarer ones read as out-of-vocabulary. 2 stops a small data set's one-off words and bigrams being learnt by heart.",
    )
    standardize: Literal["lower_and_strip_punctuation", "lower", "strip_punctuation", "none"] = Field(
        "lower_and_strip_punctuation", description="How text is normalised before splitting into words."
    )
    column: str = Field("text", description="Source `csv`: the column holding the text.")
    label_column: str = Field("label", description="Source `csv`: the column holding the label (class ids or class names).")


class TimeseriesConfig(Section):
    """Forecasting from a CSV time series: sliding windows, split by time, scaled on the training part."""

    time_column: str = Field("time", description="Column that orders the rows (numbers, or ISO dates/times, which sort as text).")
    value_columns: Optional[list[str]] = Field(None, description="Input columns; unset: every column but the time column.")
    target_columns: Optional[list[str]] = Field(None, description="Columns to forecast; unset: the value columns.")
    input_width: PositiveInt = Field(24, description="Time steps each window shows the model.")
    horizon: PositiveInt = Field(1, description="Time steps forecast after each window.")
    stride: PositiveInt = Field(1, description="Steps between the starts of consecutive windows.")
    train_fraction: Annotated[float, Field(gt=0, lt=1)] = Field(0.7, description="First part of the series used for training (windows never cross a split).")
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = Field(0.15, description="Next part, for validation; the rest is the test part.")
    scale: Literal["standard", "minmax", "none"] = Field("standard", description="Per-column scaling, fitted on the training part only.")
    smoothing: Optional[Annotated[int, Field(gt=1)]] = Field(None, description="Trailing moving average over this many steps before windowing (uses past values only: no leak).")
    season: PositiveInt = Field(24, description="Period of the seasonal-naive baseline forecasts (at most input_width).")
    target: Literal["difference", "level"] = Field(
        "difference",
        description="What the network learns: `difference` the change from each window's last value (added back inside the model, so it still outputs values; a network that outputs zero is the persistence forecast), `level` the values themselves. `difference` keeps a trending series' forecasts within reach when the test part lies outside the training part's range.",
    )
    window_inputs: Literal["relative", "absolute"] = Field(
        "relative",
        description="`relative`: the network sees each window minus its last value (per column), so a level the training part never reached looks like one it did; `absolute`: the scaled values as they are.",
    )

    @model_validator(mode="after")
    def _consistent(self):
        if self.train_fraction + self.val_fraction >= 1:
            raise field_error("val_fraction", f"train_fraction + val_fraction must leave a test part, got {self.train_fraction} + {self.val_fraction}")
        if self.season > self.input_width:
            raise field_error("season", f"expected at most input_width ({self.input_width}): the seasonal-naive forecast reads its values from the window, got {self.season}")
        return self


class DataConfig(Section):
    source: Literal["tfds", "idx", "npz", "image_folder", "text_folder", "csv", "sklearn"] = Field(
        ...,
        description="Where examples come from: `tfds` (a TensorFlow Datasets name, images or text), `idx` (a folder of MNIST-format IDX files, gzipped or not), `npz` (NumPy arrays x/y per split), `image_folder` (`[<split>/]<class>/*.png|jpg|bmp|gif`), `text_folder` (`<split>/<class>/*.txt`), `csv` (a table with `data.table`, a time series with `data.timeseries`, else a text and a label column), `sklearn` (a data set bundled with scikit-learn: no download).",
    )
    name: Optional[str] = Field(
        None, description=f"Source `tfds`: the TFDS dataset name, e.g. `mnist`, `fashion_mnist`, `cifar10`. Source `sklearn`: one of {', '.join(SKLEARN_DATASETS)} (`digits` are 8x8 images)."
    )
    path: Optional[str] = Field(
        None,
        description="Source `idx`: the folder holding `<split>-images-idx3-ubyte[.gz]` and `<split>-labels-idx1-ubyte[.gz]` (`test` also finds `t10k-*`). Source `npz`: one `.npz` file with `x_<split>`/`y_<split>` arrays, or a folder of `<split>.npz` files with `x`/`y`. Source `image_folder`: the folder holding `<split>/<class name>/<image files>`, or class folders alone (then every split name reads all of it: slice it, e.g. `train[:80%]`). Source `text_folder`: the folder holding `<split>/<class name>/*.txt`. Source `csv`: one `.csv` file (slice it into splits, e.g. `train[:80%]`) or a folder of `<split>.csv` files. A relative path is looked up beside the config file first, then in the working directory (or inside `data.package`).",
    )
    package: Optional[str] = Field(
        None, description="An installed Python package that ships the data: `data.path` is then a path inside it (e.g. `package: palmerpenguins`, `path: data/penguins.csv`)."
    )
    data_dir: Optional[str] = Field(None, description="TFDS data directory (default: TFDS's own, `~/tensorflow_datasets`).")
    manual_dir: Optional[str] = Field(None, description="TFDS manual directory holding already-downloaded source files, for offline machines.")
    splits: Splits = Field(default_factory=Splits, description="Split names (see `data.splits.*`).")
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = Field(0.1, description="Fraction of `train` carved off for validation when `splits.val` is unset and the dataset has no validation split.")
    split_shuffle: Union[bool, Literal["auto"]] = Field(
        "auto",
        description="Shuffle each split's examples (seeded by `seed`; for classification stratified, so every class is spread evenly) before slicing it (`train[:80%]`) and carving validation off it, so each part has every class in proportion. `auto`: on for sources listed in file or folder order (npz, image_folder, text_folder, csv, sklearn), off for idx and tfds, whose published order is kept.",
    )
    batch_size: Union[PositiveInt, Literal["full"]] = Field(128, description="Examples per step; `full` uses the whole training split each step (full-batch gradient descent).")
    shuffle_buffer: Optional[PositiveInt] = Field(None, description="Shuffle buffer size; unset shuffles over the whole training split.")
    cache: Union[bool, str] = Field(
        True,
        description="Cache decoded examples after the first epoch: `true` in memory, or a file path prefix (e.g. `/tmp/dlopt-cache/mnist`) for data too big for memory; `false` re-reads every epoch. Sources read into memory (idx, npz) need no cache.",
    )
    augment: list[AugmentOp] = Field(
        default_factory=list,
        description="Augmentation of training batches only, in this order; each item is `{type: ..., <parameters>}` (see `data.augment[].*`). Never applied to validation, test or `dlopt eval`.",
    )
    tta: list[Literal["horizontal_flip", "vertical_flip"]] = Field(
        default_factory=list,
        description="Test-time augmentation for image classifiers: the final test evaluation, `dlopt eval` and `dlopt predict` average the class probabilities of each image and these flipped views of it (use the flips `augment` trained with). summary.json then holds `test` with the views and `test_single_view` without.",
    )
    parallel_calls: Union[PositiveInt, Literal["auto"]] = Field(
        "auto", description="Batches encoded and augmented in parallel by tf.data (`auto`: tf.data.AUTOTUNE)."
    )
    prefetch: Union[PositiveInt, Literal["auto"]] = Field("auto", description="Batches prepared ahead of the training step (`auto`: tf.data.AUTOTUNE).")
    task: Literal["auto", "classification", "regression"] = Field(
        "auto", description="`auto`: integer labels mean classification, floating-point labels mean regression."
    )
    num_classes: Optional[PositiveInt] = Field(None, description="Number of classes; unset: from the dataset's metadata, or the largest training label + 1.")
    class_names: Optional[list[str]] = Field(
        None,
        description="Class names in class-id order, shown by predict, eval and plots (e.g. Fashion-MNIST's `[T-shirt/top, Trouser, ...]`); unset: TFDS's own names, folder names, CSV label names, or the ids.",
    )
    preprocess: Preprocess = Field(default_factory=Preprocess, description="Preprocessing (see `data.preprocess.*`).")
    image: ImageConfig = Field(default_factory=ImageConfig, description="Source `image_folder`: decoding and resizing (see `data.image.*`).")
    skip_bad_files: bool = Field(
        True, description="Source `image_folder`: files that are not readable images are skipped with one warning line that counts them; `false` makes them an error."
    )
    table: Optional[TableConfig] = Field(None, description="Source `csv` as a table of feature columns and a label column (see `data.table.*`).")
    text: TextConfig = Field(default_factory=TextConfig, description="Text inputs (TFDS text datasets, `text_folder`, `csv`); see `data.text.*`.")
    timeseries: Optional[TimeseriesConfig] = Field(None, description="Source `csv` as a time series to forecast (see `data.timeseries.*`); unset: the CSV holds text.")

    @model_validator(mode="after")
    def _source_needs_its_keys(self):
        if self.source == "tfds" and not self.name:
            raise field_error("name", "required when data.source is 'tfds' (a TFDS dataset name such as 'mnist')")
        if self.source == "sklearn" and self.name not in SKLEARN_DATASETS:
            raise field_error("name", f"expected one of {', '.join(SKLEARN_DATASETS)} with data.source 'sklearn', got {self.name!r}{did_you_mean(self.name, SKLEARN_DATASETS)}")
        for key in ("timeseries", "table"):
            if getattr(self, key) is not None and self.source != "csv":
                raise field_error(key, f"needs data.source 'csv', got '{self.source}'")
        if self.timeseries is not None and self.table is not None:
            raise field_error("table", "a csv is read as a table or as a time series, not both (remove data.timeseries or data.table)")
        if self.package and self.source not in FILE_SOURCES:
            raise field_error("package", f"only applies to file sources ({', '.join(FILE_SOURCES)}), got '{self.source}'")
        if self.source in FILE_SOURCES and not self.path:
            raise field_error("path", f"required when data.source is '{self.source}' (a file or folder path)")
        return self


# ---------------------------------------------------------------------------------------- model


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


class CnnConfig(ModelBase):
    """Convolutional network: conv blocks, then a dense head."""

    type: Literal["cnn"] = Field("cnn", description="Model family from the registry: `cnn`, `mlp`, `lstm`, `transformer`, `fasttext`, `textcnn`, `backbone`, or a name your `model.module` registers.")
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


class MlpConfig(ModelBase):
    """Multi-layer perceptron: flatten, then dense layers."""

    type: Literal["mlp"] = "mlp"
    layers: list[PositiveInt] = Field(default_factory=lambda: [256, 128], description="Units of each hidden dense layer (`mlp`).")


class LstmConfig(ModelBase):
    """Stacked recurrent layers over (time, features) inputs or token ids."""

    type: Literal["lstm"]
    cell: Literal["lstm", "gru", "rnn"] = Field("lstm", description="Recurrent cell: `lstm`, `gru` or `rnn` (Keras' SimpleRNN, the classic recurrent layer) (`lstm`).")
    units: list[PositiveInt] = Field(default_factory=lambda: [64], description="Units of each stacked recurrent layer; all but the last return sequences to the next (`lstm`).")
    bidirectional: bool = Field(False, description="Read each sequence both ways (`lstm`).")
    recurrent_dropout: Fraction = Field(0.0, description="Dropout on the recurrent state (`lstm`; above 0 Keras cannot use its fused kernel: slower).")
    embedding_dim: PositiveInt = Field(64, description="Token embedding size, used when the inputs are token ids (text) (`lstm`, `transformer` uses `width`).")
    dense: list[PositiveInt] = Field(default_factory=list)


class TransformerConfig(ModelBase):
    """A small encoder: token (or feature) + position embedding, N self-attention blocks, pooling."""

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


class FastTextConfig(ModelBase):
    """fastText-style text classifier: token (and n-gram) embeddings averaged into one vector."""

    type: Literal["fasttext"]
    embedding_dim: PositiveInt = Field(64, description="Token embedding size (`fasttext`).")
    token_dropout: Fraction = Field(
        0.0, description="Drop whole tokens (their embeddings) with this probability before averaging, in training only: word dropout, a regulariser for small text sets (`fasttext`)."
    )
    wide: bool = Field(
        False,
        description="Also a linear model of the tokens (wide & deep): one weight per token and output, averaged over the text like the embeddings, its logits added to the head's; the full-rank part a bag-of-words logistic regression has (`fasttext`).",
    )
    dense: list[PositiveInt] = Field(default_factory=list)


class TextCnnConfig(ModelBase):
    """1-D convolutional text classifier: parallel convolutions over token embeddings, max over time."""

    type: Literal["textcnn"]
    embedding_dim: PositiveInt = Field(64, description="Token embedding size (`textcnn`).")
    filters: PositiveInt = Field(128, description="Filters per kernel size (`textcnn`).")
    kernel_sizes: list[PositiveInt] = Field(default_factory=lambda: [3, 4, 5], description="Widths, in tokens, of the parallel convolutions (`textcnn`).")
    token_dropout: Fraction = Field(0.0, description="Drop whole tokens with this probability, in training only (`textcnn`; see `fasttext`).")
    dense: list[PositiveInt] = Field(default_factory=list)


class BackboneConfig(ModelBase):
    """A keras.applications image model as the feature extractor, with a new head for the task."""

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
            hint = did_you_mean(self.type, BUILTIN_MODELS)
            raise field_error(
                "type",
                f"unknown model '{self.type}'{hint}; built in: {', '.join(BUILTIN_MODELS)} "
                "(set model.module or pass --module to register your own)",
            )
        return self


BUILTIN_MODELS = {"cnn": CnnConfig, "mlp": MlpConfig, "lstm": LstmConfig, "transformer": TransformerConfig, "fasttext": FastTextConfig, "textcnn": TextCnnConfig, "backbone": BackboneConfig}


def _model_tag(data: Any) -> str:
    kind = data.get("type", "cnn") if isinstance(data, dict) else getattr(data, "type", "cnn")
    return kind if kind in BUILTIN_MODELS else "custom"


ModelConfig = Annotated[
    Union[
        Annotated[CnnConfig, Tag("cnn")],
        Annotated[MlpConfig, Tag("mlp")],
        Annotated[LstmConfig, Tag("lstm")],
        Annotated[TransformerConfig, Tag("transformer")],
        Annotated[FastTextConfig, Tag("fasttext")],
        Annotated[TextCnnConfig, Tag("textcnn")],
        Annotated[BackboneConfig, Tag("backbone")],
        Annotated[CustomModelConfig, Tag("custom")],
    ],
    Discriminator(_model_tag),
]


# ------------------------------------------------------------------------------------ optimizer


class OptimizerBase(Section):
    learning_rate: PositiveFloat = Field(1e-3, description="Base learning rate (the peak, when a schedule warms up or decays).")
    clipnorm: Optional[PositiveFloat] = Field(None, description="Clip each gradient to this L2 norm.")
    clipvalue: Optional[PositiveFloat] = Field(None, description="Clip each gradient element to [-clipvalue, clipvalue].")
    global_clipnorm: Optional[PositiveFloat] = Field(None, description="Clip all gradients together to this global L2 norm.")
    weight_decay: Optional[NonNegativeFloat] = Field(None, description="Decoupled weight decay (AdamW default 0.004; unset elsewhere means none).")
    ema_momentum: Optional[Annotated[float, Field(gt=0, lt=1)]] = Field(
        None,
        description="Keep an exponential moving average of the weights (Polyak averaging), updated each step with this momentum (e.g. 0.999: about the last 1,000 steps). Validation, checkpoints, early stopping and the test use the averaged weights; training updates the raw ones. Batch norm's moving statistics stay those of the raw weights, so a momentum averaging far back (0.9998 and up) can score well below them. Unset: no average.",
    )

    @model_validator(mode="after")
    def _one_clipping(self):
        chosen = [k for k in ("clipnorm", "clipvalue", "global_clipnorm") if getattr(self, k) is not None]
        if len(chosen) > 1:
            raise field_error(chosen[1], f"set one of clipnorm, clipvalue, global_clipnorm, not {' and '.join(chosen)}")
        return self


class Sgd(OptimizerBase):
    """Stochastic gradient descent (with `batch_size: full`, plain gradient descent)."""

    type: Literal["sgd"] = Field(..., description="Optimizer: `sgd`, `adagrad`, `rmsprop`, `adam`, `adamw`.")
    learning_rate: PositiveFloat = 0.01
    momentum: Annotated[float, Field(ge=0, lt=1)] = Field(0.0, description="Momentum (`sgd`, `rmsprop`).")
    nesterov: bool = Field(False, description="Nesterov momentum (`sgd`).")


class Adagrad(OptimizerBase):
    type: Literal["adagrad"]
    initial_accumulator_value: NonNegativeFloat = Field(0.1, description="Starting value of the squared-gradient accumulators (`adagrad`).")
    epsilon: PositiveFloat = Field(1e-7, description="Numerical-stability constant (`adagrad`, `rmsprop`, `adam`, `adamw`).")


class Rmsprop(OptimizerBase):
    type: Literal["rmsprop"]
    rho: Fraction = Field(0.9, description="Discount of the squared-gradient average (`rmsprop`).")
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.0
    epsilon: PositiveFloat = 1e-7
    centered: bool = Field(False, description="Normalise by the gradient's estimated variance (`rmsprop`).")


class Adam(OptimizerBase):
    type: Literal["adam"]
    beta_1: Fraction = Field(0.9, description="First-moment decay (`adam`, `adamw`).")
    beta_2: Fraction = Field(0.999, description="Second-moment decay (`adam`, `adamw`).")
    epsilon: PositiveFloat = 1e-7
    amsgrad: bool = Field(False, description="Use the AMSGrad variant (`adam`, `adamw`).")


class AdamW(Adam):
    type: Literal["adamw"]
    weight_decay: Optional[NonNegativeFloat] = 0.004


OptimizerConfig = Annotated[Union[Sgd, Adagrad, Rmsprop, Adam, AdamW], Field(discriminator="type")]


# ------------------------------------------------------------------------------------- schedule


class ScheduleBase(Section):
    warmup_epochs: NonNegativeFloat = Field(0.0, description="Linear warm-up from `warmup_start` to the base learning rate over this many epochs (fractions allowed), before any schedule.")
    warmup_start: NonNegativeFloat = Field(0.0, description="Learning rate at the first warm-up step.")


class Constant(ScheduleBase):
    type: Literal["constant"] = Field(..., description="Schedule: `constant`, `exponential`, `step`, `cosine`, `plateau`.")


class Exponential(ScheduleBase):
    type: Literal["exponential"]
    decay_rate: Annotated[float, Field(gt=0, lt=1)] = Field(0.9, description="Multiply the rate by this every `decay_epochs` (`exponential`).")
    decay_epochs: PositiveFloat = Field(1.0, description="Epochs per decay period (`exponential`); for `cosine`, the length of the decay (unset: the rest of training; with restarts, the first period).")
    staircase: bool = Field(False, description="Decay in steps at whole periods instead of smoothly (`exponential`).")


class Step(ScheduleBase):
    """Piecewise-constant: the rate changes at the given epochs."""

    type: Literal["step"]
    boundaries: list[PositiveFloat] = Field(..., description="Epochs at which the rate changes (`step`), increasing.")
    values: Optional[list[PositiveFloat]] = Field(None, description="Rates for each piece, one more than `boundaries` (`step`); unset: base rate times `factor` per boundary.")
    factor: Annotated[float, Field(gt=0)] = Field(0.1, description="Multiplier at each boundary when `values` is unset (`step`); for `plateau`, the reduction factor.")

    @model_validator(mode="after")
    def _consistent(self):
        if any(b >= a for b, a in zip(self.boundaries, self.boundaries[1:])) or not self.boundaries:
            raise field_error("boundaries", f"expected a non-empty increasing list of epochs, got {self.boundaries}")
        if self.values is not None and len(self.values) != len(self.boundaries) + 1:
            raise field_error("values", f"expected {len(self.boundaries) + 1} values (one more than boundaries), got {len(self.values)}")
        return self


class Cosine(ScheduleBase):
    type: Literal["cosine"]
    decay_epochs: Optional[PositiveFloat] = None
    alpha: Fraction = Field(0.0, description="Final rate as a fraction of the base rate (`cosine`).")
    restarts: bool = Field(False, description="Warm restarts (SGDR) (`cosine`).")
    t_mul: PositiveFloat = Field(2.0, description="Each restart period is this many times longer (`cosine` with restarts).")
    m_mul: PositiveFloat = Field(1.0, description="Each restart starts at this fraction of the previous peak (`cosine` with restarts).")


class Plateau(ScheduleBase):
    """Reduce the rate when a monitored metric stops improving (Keras ReduceLROnPlateau)."""

    type: Literal["plateau"]
    monitor: str = Field("val_loss", description="Metric watched (`plateau`).")
    factor: Annotated[float, Field(gt=0, lt=1)] = 0.1
    patience: Annotated[int, Field(ge=0)] = Field(3, description="Epochs without improvement before reducing (`plateau`).")
    min_delta: NonNegativeFloat = Field(1e-4, description="Smallest change that counts as improvement (`plateau`).")
    min_lr: NonNegativeFloat = Field(0.0, description="Lower bound on the rate (`plateau`).")
    cooldown: Annotated[int, Field(ge=0)] = Field(0, description="Epochs to wait after a reduction (`plateau`).")


ScheduleConfig = Annotated[Union[Constant, Exponential, Step, Cosine, Plateau], Field(discriminator="type")]


# ---------------------------------------------------------------------------------------- train

LOSSES = (
    "auto",
    "sparse_categorical_crossentropy",
    "categorical_crossentropy",
    "binary_crossentropy",
    "mse",
    "mae",
    "huber",
)
METRICS = ("accuracy", "top_k_accuracy", "precision", "recall", "macro_f1", "auc", "mae", "mse", "rmse")
Metric = Literal["accuracy", "top_k_accuracy", "precision", "recall", "macro_f1", "auc", "mae", "mse", "rmse"]


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
    loss: Literal[LOSSES] = Field(
        "auto",
        description="Loss: `sparse_categorical_crossentropy`, `categorical_crossentropy`, `binary_crossentropy`, `mse`, `mae`, `huber`; `auto` picks sparse categorical cross-entropy for classification and MSE for regression.",
    )
    label_smoothing: Fraction = Field(0.0, description="Label smoothing for cross-entropy losses.")
    huber_delta: PositiveFloat = Field(1.0, description="Delta of the Huber loss.")
    metrics: Optional[list[Metric]] = Field(
        None,
        description=f"Metrics, from: {', '.join(METRICS)}. `macro_f1`, `precision`, `recall` and `auc` are computed on one-hot labels (precision/recall at threshold 0.5, micro-averaged). Unset: `[accuracy]` for classification, `[mae, rmse]` for regression.",
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


# ----------------------------------------------------------------------------------------- root

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

    @model_validator(mode="after")
    def _consistent(self):
        if self.model.type == "backbone" and (self.data.preprocess.rescale is not None or self.data.preprocess.standardize != "none"):
            raise PydanticCustomError(
                "dlopt_field", "{message}", {"key": "data.preprocess", "message": "model.type backbone applies the backbone's own preprocessing to raw pixels (0-255); remove data.preprocess"}
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
        if not NAME_PATTERN.match(name) or ".." in name:
            raise ValueError(f"expected letters, digits, '_', '-', '.', '=' or '+' (no path separators), got {name!r}")
        return name

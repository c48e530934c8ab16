"""The `data` section: where examples come from, how they are split, batched, preprocessed and
augmented. `SOURCES` is the registry of data sources."""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import Field, model_validator

from ..registry import Registry, did_you_mean
from .schema_base import NonNegativeFloat, PositiveInt, Section, field_error
from .augment import AugmentOp
from .train import LOSSES, METRICS


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


# Each source: the class that reads it (data/), whether it reads files at `data.path`, and whether it
# lists examples in file or folder order (often by class: shuffled before slicing and carving).
SOURCES: Registry = Registry("data source")
SOURCES.add("tfds", "dlopt.data.tfds_source:TfdsSource", "a TensorFlow Datasets name, images or text", files=False, unordered=False)
SOURCES.add("idx", "dlopt.data.idx:IdxSource", "a folder of MNIST-format IDX files, gzipped or not", files=True, unordered=False)
SOURCES.add("npz", "dlopt.data.npz:NpzSource", "NumPy arrays x/y per split", files=True, unordered=True)
SOURCES.add("image_folder", "dlopt.data.images:ImageFolderSource", "`[<split>/]<class>/*.png|jpg|bmp|gif`", files=True, unordered=True)
SOURCES.add("text_folder", "dlopt.data.text_files:TextFolderSource", "`<split>/<class>/*.txt`", files=True, unordered=True)
SOURCES.add("csv", "dlopt.data.csv_source:CsvSource", "a table with `data.table`, a time series with `data.timeseries`, else a text and a label column", files=True, unordered=True)
SOURCES.add("sklearn", "dlopt.data.bundled:BundledSource", "a data set bundled with scikit-learn: no download", files=False, unordered=True)
FILE_SOURCES = tuple(SOURCES.where(files=True))
UNORDERED_SOURCES = tuple(SOURCES.where(unordered=True))
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


class TableOutput(Section):
    """One column a `model.type: mixed` model predicts, beside the others of `data.table.outputs`."""

    column: str = Field(..., description="The column to predict.")
    type: Literal["auto", "category", "binary", "number", "multi_label"] = Field(
        "auto",
        description="`category` (softmax over the training values), `binary` (one sigmoid unit: two values), `number` (a linear unit), `multi_label` (several values in one cell, split as `set_columns` are: one sigmoid per training value). "
        "`auto`: a number unless every value is an integer, then two values binary, more a category.",
    )
    loss: LOSSES.literal("auto") = Field("auto", description="This output's loss; `auto`: cross-entropy for categories (binary for binary and multi_label), MSE for numbers.")
    metrics: Optional[list[METRICS.literal()]] = Field(None, description="This output's metrics; unset: `[accuracy]` for categories, binary and multi_label, `[mae, rmse]` for numbers.")
    weight: NonNegativeFloat = Field(1.0, description="This output's loss weight: the training loss is the weighted sum of the outputs' losses.")


class TableConfig(Section):
    """Source `csv` as a table: feature columns (numbers, categories, text, sets, dates, image paths) and a label column. The
    preprocessing is learnt from the training split only and saved inside the model, so the model
    takes raw rows. Before any run folder exists, dlopt prints how it reads each column (number,
    category, text, set, date, image, ignored) and why. A missing category is a category of its own; missing numbers
    and values that do not fit their column: `missing_numbers`, `bad_values`."""

    label_column: Optional[str] = Field(None, description="The column to predict: class names or ids (classification), or numbers (regression, or see `data.task`). Set this or `outputs`.")
    outputs: Optional[Annotated[list[TableOutput], Field(min_length=1)]] = Field(
        None,
        description="Instead of `label_column` (`model.type: mixed`): one or several columns to predict, each with its type, loss, metrics and loss weight. "
        "Logged as Keras names them: `<column>_loss`, `<column>_<metric>` (with one output: `loss`, `<metric>`); `checkpoint.monitor` picks one of them, or the weighted `val_loss`.",
    )
    feature_columns: Optional[Annotated[list[str], Field(min_length=1)]] = Field(None, description="Input columns; unset: every column but the label and `ignore_columns`.")
    categorical_columns: Optional[list[str]] = Field(
        None, description="Columns read as categories even when their values are numbers (codes, years); columns with any non-numeric value are categorical anyway."
    )
    text_columns: Optional[list[str]] = Field(
        None,
        description="Columns read as free text: each gets a vocabulary from the training split (with `data.text`'s settings) and the text encoder of `model.type: mixed`. Unset: columns of many different values of several words each are text.",
    )
    set_columns: list[str] = Field(
        default_factory=list, description="Columns holding several values in one cell (tags), split on `set_separator`; each of the training split's `max_set_values` most frequent values is a 0/1 feature."
    )
    set_separator: Optional[str] = Field(None, description="What separates the values of a `set_columns` cell; unset: any whitespace.")
    max_set_values: PositiveInt = Field(1000, description="Most frequent values kept per set column (from the training split); rarer and unseen ones share one 'other' slot.")
    date_columns: Optional[list[str]] = Field(
        None,
        description="Columns of ISO dates (`2024-03-01`, `2024-03-01 14:30`), read inside the model as the day count (standardised on the training split), month, weekday and hour as cycles, the day of the month, and a missing flag. Unset: columns whose every value is such a date.",
    )
    image_columns: Optional[list[str]] = Field(
        None,
        description="Columns of image file paths (relative to the CSV file's folder, or absolute), decoded and resized inside the model by `data.image`'s settings (`size` required) and encoded by `model.image` of `model.type: mixed`. "
        "Unset: columns whose every value ends in .png, .jpg, .jpeg, .bmp or .gif. A path that is no file is a value that does not fit its column (`bad_values`).",
    )
    ignore_columns: list[str] = Field(default_factory=list, description="Columns never used as features (ids, free text, leaks of the label).")
    missing_values: list[str] = Field(default_factory=lambda: list(MISSING_VALUES), description="Cell values that mean 'missing' (compared after stripping spaces).")
    max_categories: PositiveInt = Field(100, description="Most frequent categories kept per column (from the training split); rarer and unseen ones share one 'other' slot.")
    missing_numbers: Literal["indicator", "mean", "constant", "drop_row"] = Field(
        "indicator",
        description="A missing number: `indicator` the training mean plus a 0/1 `missing` feature (for columns with gaps in training), `mean` the training mean alone, `constant` `fill_value`, `drop_row` the row left out (counted, printed and kept in run.json).",
    )
    fill_value: float = Field(0.0, description="The number a missing one becomes with `missing_numbers: constant`.")
    bad_values: Literal["error", "missing", "drop_row"] = Field(
        "error",
        description="A value that does not fit its column (`abc` or `inf` in a column of numbers): `error` stops before any run folder exists, naming file, line, column and value; `missing` reads it as missing; `drop_row` leaves the row out (counted, printed and kept in run.json).",
    )

    @property
    def label_columns(self) -> list[str]:
        """The columns the model predicts: `label_column`, or each of `outputs`."""
        return [self.label_column] if self.outputs is None else [output.column for output in self.outputs]

    @model_validator(mode="after")
    def _one_kind_per_column(self):
        if (self.label_column is None) == (self.outputs is None):
            raise field_error("label_column", "set either label_column (one column to predict) or outputs (one or several), not both" if self.outputs else "missing: the column to predict (or `outputs`)")
        named = [output.column for output in self.outputs or []]
        twice = sorted({c for c in named if named.count(c) > 1})
        if twice:
            raise field_error("outputs", f"'{twice[0]}' is predicted twice; one entry per column")
        seen: dict[str, str] = {}
        for key in ("categorical_columns", "text_columns", "set_columns", "date_columns", "image_columns", "ignore_columns"):
            for column in getattr(self, key) or []:
                if column in self.label_columns:
                    raise field_error(key, f"'{column}' is {'the label column' if self.outputs is None else 'an output'}, not a feature")
                if column in seen:
                    raise field_error(key, f"'{column}' is in {seen[column]} too; a column is read one way")
                seen[column] = key
        return self


class TextConfig(Section):
    """Text inputs: turned into token ids by a TextVectorization layer adapted on the training split
    only and saved inside the model, so the saved model takes raw text."""

    max_tokens: PositiveInt = Field(20000, description="Vocabulary size, including the padding and out-of-vocabulary tokens.")
    sequence_length: Optional[PositiveInt] = Field(
        200, description="Tokens per example: longer texts are cut, shorter ones padded. `null`: every token of every text (each batch padded to its longest text), for `model.type: tfidf`, a bag of words that needs no fixed length."
    )
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
    source: SOURCES.literal() = Field(
        ...,
        description="Where examples come from: " + ", ".join(f"`{e.name}` ({e.description})" for e in SOURCES.entries()) + ".",
    )
    name: Optional[str] = Field(
        None, description=f"Source `tfds`: the TFDS dataset name, e.g. `mnist`, `fashion_mnist`, `cifar10`. Source `sklearn`: one of {', '.join(SKLEARN_DATASETS)} (`digits` are 8x8 images)."
    )
    path: Optional[str] = Field(
        None,
        description="Source `idx`: the folder holding `<split>-images-idx3-ubyte[.gz]` and `<split>-labels-idx1-ubyte[.gz]` (`test` also finds `t10k-*`). Source `npz`: one `.npz` file with `x_<split>`/`y_<split>` arrays, or a folder of `<split>.npz` files with `x`/`y`. Source `image_folder`: the folder holding `<split>/<class name>/<image files>`, or class folders alone (then every split name reads all of it: slice it, e.g. `train[:80%]`). Source `text_folder`: the folder holding `<split>/<class name>/*.txt`. Source `csv`: one `.csv` file (slice it into splits, e.g. `train[:80%]`) or a folder of `<split>.csv` files; a table (`data.table`) may be `.parquet` files instead (read with pandas and pyarrow). A relative path is looked up beside the config file first, then in the working directory (or inside `data.package`).",
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
        description="Shuffle each split's examples (seeded by `seed`; for classification stratified, so every class is spread evenly) before slicing it (`train[:80%]`) and carving validation off it, so each part has every class in proportion. "
        f"`auto`: on for sources listed in file or folder order ({', '.join(UNORDERED_SOURCES)}), off for {' and '.join(s for s in SOURCES if s not in UNORDERED_SOURCES)}, whose published order is kept.",
    )
    batch_size: Union[PositiveInt, Literal["full"]] = Field(128, description="Examples per step; `full` uses the whole training split each step (full-batch gradient descent).")
    shuffle_buffer: Optional[PositiveInt] = Field(None, description="Shuffle buffer size; unset shuffles over the whole training split.")
    cache: Union[bool, str] = Field(
        True,
        description="Cache decoded examples after the first epoch: `true` in memory, or a file path prefix (e.g. `/tmp/dlopt-cache/mnist`) for data too big for memory; `false` re-reads every epoch. Sources read into memory (idx, npz) need no cache. A table's image columns: `true` decodes every path once before training, otherwise each batch reads its files.",
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

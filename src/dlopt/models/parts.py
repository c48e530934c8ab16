"""The building blocks the model families share: what a builder is told about its inputs and
outputs (InputSpec, OutputSpec), the output head, dense stacks, self-attention blocks, sequence and
text inputs."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError


@dataclass(frozen=True)
class InputSpec:
    shape: tuple
    vocabulary_size: int | None = None  # set when the inputs are token ids (text after vectorisation)
    # TF-IDF weighting: how many training texts hold each token id, of how many texts
    document_counts: object = field(default=None, compare=False)
    documents: int | None = None
    table: object = field(default=None, compare=False)  # tables, for families that take raw columns (`mixed`): the TableSpec


@dataclass(frozen=True)
class OutputSpec:
    task: str  # classification | regression
    units: int
    activation: str  # softmax | sigmoid | linear
    shape: tuple  # per-example output shape


OUTPUT_TYPES = {  # several outputs: an output's type -> (task, activation); units from its values
    "category": ("classification", "softmax"),
    "binary": ("classification", "sigmoid"),
    "multi_label": ("classification", "sigmoid"),
    "number": ("regression", "linear"),
}


def output_spec_for(data) -> OutputSpec | dict:
    """What the head predicts; several outputs (`data.table.outputs`): an OutputSpec per output name."""
    if getattr(data, "outputs", None) is not None:
        specs = {}
        for output in data.outputs:
            task, activation = OUTPUT_TYPES[output.kind]
            units = 1 if output.kind in ("binary", "number") else len(output.values)
            specs[output.name] = OutputSpec(task, units, activation, () if output.kind == "number" else (units,))
        return specs
    if data.task == "regression":
        shape = data.target_shape
        units = 1
        for dim in shape:
            units *= dim
        return OutputSpec("regression", units, "linear", shape)
    if data.label_format == "binary":
        return OutputSpec("classification", 1, "sigmoid", (1,))
    return OutputSpec("classification", data.num_classes, "softmax", (data.num_classes,))


def output_head(x, spec: OutputSpec, kernel_regularizer=None, added_logits=None):
    """The final layer for the task: softmax classes, a sigmoid unit, or linear values; with
    `added_logits` (a wide part's), those are added to the dense layer's before the activation."""
    import keras

    layers = keras.layers
    # float32 even under mixed precision: softmax and the loss need the range (Keras' advice)
    if added_logits is None:
        outputs = layers.Dense(spec.units, activation=spec.activation, kernel_regularizer=kernel_regularizer, dtype="float32", name="head")(x)
    else:
        logits = layers.Dense(spec.units, kernel_regularizer=kernel_regularizer, dtype="float32", name="head_logits")(x)
        logits = layers.Add(dtype="float32", name="head_sum")([logits, added_logits])
        return head_of_logits(logits, spec)
    if spec.task == "regression" and len(spec.shape) > 1:
        outputs = keras.layers.Reshape(spec.shape, dtype="float32")(outputs)
    return outputs


def output_heads(x, spec: OutputSpec | dict, kernel_regularizer=None):
    """`output_head`, or for several outputs a dict of heads by output name (the Keras outputs)."""
    import keras

    if not isinstance(spec, dict):
        return output_head(x, spec, kernel_regularizer)
    return {name: keras.layers.Dense(s.units, activation=s.activation, kernel_regularizer=kernel_regularizer, dtype="float32", name=f"output_{name}")(x) for name, s in spec.items()}


def head_of_logits(logits, spec: OutputSpec):
    """The task's activation over finished logits (a linear model's), as the `head` layer."""
    import keras

    outputs = keras.layers.Activation(spec.activation, dtype="float32", name="head")(logits)
    if spec.task == "regression" and len(spec.shape) > 1:
        outputs = keras.layers.Reshape(spec.shape, dtype="float32")(outputs)
    return outputs


def dense_stack(x, units_list, model_config, regularizer, prefix: str):
    """Dense -> [batch norm] -> activation -> [dropout], per hidden layer."""
    import keras

    layers = keras.layers
    for i, units in enumerate(units_list):
        x = layers.Dense(units, use_bias=not model_config.batch_norm, kernel_regularizer=regularizer, name=f"{prefix}{i}")(x)
        if model_config.batch_norm:
            x = layers.BatchNormalization(momentum=model_config.batch_norm_momentum, name=f"{prefix}{i}_bn")(x)
        x = layers.Activation(model_config.activation, name=f"{prefix}{i}_act")(x)
        if model_config.dropout:
            x = layers.Dropout(model_config.dropout, name=f"{prefix}{i}_dropout")(x)
    return x


def sequence_inputs(input_spec: InputSpec, embedding_dim: int, family: str, mask: bool = True):
    """(inputs, x) for sequence models: token ids embedded (padding id 0 masked, unless `mask` is
    off for layers that cannot take a mask), (time,) values given one feature, (time, features)
    taken as they are."""
    import keras

    shape = tuple(input_spec.shape)
    if input_spec.vocabulary_size:
        inputs = keras.Input(shape=shape, dtype="int64")
        return inputs, keras.layers.Embedding(input_spec.vocabulary_size, embedding_dim, mask_zero=mask, name="embedding")(inputs)
    inputs = keras.Input(shape=shape)
    if len(shape) == 1:
        return inputs, keras.layers.Reshape(shape + (1,), name="one_feature")(inputs)
    if len(shape) == 2:
        return inputs, inputs
    raise ConfigError(f"model.type: {family} expects sequences (time steps[, features]) or text, the data has shape {shape}")


def text_token_ids(input_spec: InputSpec, family: str):
    """The token-id input of a text-only family (a config error for other data)."""
    import keras

    if not input_spec.vocabulary_size:
        raise ConfigError(f"model.type: {family} expects text (token ids from data.text), the data has shape {tuple(input_spec.shape)}")
    return keras.Input(shape=tuple(input_spec.shape), dtype="int64")


def text_inputs(model_config, input_spec: InputSpec, family: str, mask: bool = True):
    """(inputs, x) for text-only families: token ids embedded, then whole tokens dropped with
    `model_config.token_dropout` in training (one draw per token, shared by its whole embedding)."""
    if not input_spec.vocabulary_size:
        raise ConfigError(f"model.type: {family} expects text (token ids from data.text), the data has shape {tuple(input_spec.shape)}")
    inputs, x = sequence_inputs(input_spec, model_config.embedding_dim, family, mask=mask)
    return inputs, drop_tokens(x, model_config.token_dropout, input_spec, "token_dropout")


def drop_tokens(x, rate: float, input_spec: InputSpec, name: str):
    """`x` (per-token vectors) with whole tokens dropped at `rate` in training: one draw per token,
    shared by its whole vector; `x` unchanged for rate 0."""
    import keras

    if not rate:
        return x
    return keras.layers.Dropout(rate, noise_shape=(None, input_spec.shape[0], 1), name=name)(x)


def kernel_regularizer(model_config):
    import keras

    if model_config.l1 or model_config.l2:
        return keras.regularizers.L1L2(l1=model_config.l1, l2=model_config.l2)
    return None


def attention_blocks(x, depth: int, heads: int, ff_width: int, dropout: float, activation: str, regularizer, prefix: str = "block"):
    """`depth` encoder blocks over (batch, positions, width): multi-head self-attention, then a
    feed-forward layer, each with a residual and layer norm (post-norm, as the original Transformer)."""
    import keras

    layers = keras.layers
    width = x.shape[-1]
    for i in range(depth):
        attention = layers.MultiHeadAttention(heads, width // heads, dropout=dropout, name=f"{prefix}{i}_attention")(x, x)
        x = layers.LayerNormalization(epsilon=1e-6, name=f"{prefix}{i}_norm1")(layers.Add(name=f"{prefix}{i}_residual1")([x, attention]))
        ff = layers.Dense(ff_width, activation=activation, kernel_regularizer=regularizer, name=f"{prefix}{i}_ff1")(x)
        ff = layers.Dense(width, kernel_regularizer=regularizer, name=f"{prefix}{i}_ff2")(ff)
        if dropout:
            ff = layers.Dropout(dropout, name=f"{prefix}{i}_dropout")(ff)
        x = layers.LayerNormalization(epsilon=1e-6, name=f"{prefix}{i}_norm2")(layers.Add(name=f"{prefix}{i}_residual2")([x, ff]))
    return x

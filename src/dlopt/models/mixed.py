"""`mixed`: one model over a table whose columns are of several kinds.

Each column is encoded inside the model from its raw value (so a saved model takes raw rows):
numbers standardised (plus a missing flag), categories one-hot or embedded by their count of values,
sets of values 0/1 per value, dates as their parts (models/tabular.py), text through its own
vocabulary (learnt from the training split) and a text family's network up to its head
(`model.text`: fasttext, tfidf, textcnn, lstm or transformer), image paths read and resized, then
an image family's network up to its head (`model.image`: cnn or backbone). The combiner then joins the columns:
`concat` puts the encodings side by side; `transformer` makes each column one token and lets
self-attention blocks relate them (FT-Transformer's idea) before flattening. Dense layers and the
head follow: one, or one per output of `data.table.outputs`, each from the same last dense layer.
"""

from __future__ import annotations

import keras

from ..data.vocabulary import text_vectorization
from . import tabular  # the module, not its names: importing keras may register the families first
from .parts import InputSpec, OutputSpec, attention_blocks, dense_stack, kernel_regularizer, output_heads


def build_mixed(model_config, input_spec, output_spec):
    layers = keras.layers
    c = model_config
    regularizer = kernel_regularizer(c)
    spec = input_spec.table
    inputs = tabular.table_inputs(spec)
    encoded = [_encode(inputs[column.input], column, c) for column in spec.columns]
    if c.combiner == "concat":
        x = encoded[0] if len(encoded) == 1 else layers.Concatenate(name="columns")(encoded)
    else:
        # one token per column: its encoding projected to token_width (a category's embedding is one already)
        tokens = [e if column.kind == "categorical" else layers.Dense(c.token_width, name=f"{column.input}_token")(e) for e, column in zip(encoded, spec.columns)]
        tokens = [layers.Reshape((1, c.token_width), name=f"{column.input}_as_token")(t) for t, column in zip(tokens, spec.columns)]
        x = tokens[0] if len(tokens) == 1 else layers.Concatenate(axis=1, name="columns")(tokens)
        x = attention_blocks(x, c.depth, c.heads, c.ff_width, c.dropout, c.activation, regularizer, prefix="across")
        x = layers.Flatten(name="columns_flat")(x)
    x = dense_stack(x, c.layers, c, regularizer, prefix="dense")
    return keras.Model(inputs, output_heads(x, output_spec, regularizer), name="mixed")  # several outputs: a dict of heads


def _encode(x, column, c):
    """One column's encoding, a (batch, features) tensor."""
    layers = keras.layers
    if column.kind == "numeric":
        return tabular.number_features(x, column)
    if column.kind == "categorical":
        width = c.token_width if c.combiner == "transformer" else c.embedding_dim
        if c.combiner == "concat" and len(column.vocabulary) + 1 <= c.one_hot_max:
            return tabular.one_hot(x, column)
        ids = layers.StringLookup(vocabulary=column.vocabulary, num_oov_indices=1, name=f"{column.input}_ids")(x)
        embedded = layers.Embedding(len(column.vocabulary) + 1, width, name=f"{column.input}_embedding")(ids)
        return layers.Reshape((width,), name=f"{column.input}_flat")(embedded)
    if column.kind == "set":
        return tabular.SetValues(column.vocabulary, column.separator, name=f"{column.input}_values")(x)
    if column.kind == "date":
        return tabular.DateParts(column.mean, column.variance, name=f"{column.input}_date")(x)
    if column.kind == "image":
        return _image(x, column, c)
    return _text(x, column, c)


def _image(x, column, c):
    """Image paths -> pixels (read and resized inside the model) -> the image family's network up
    to its head (`model.image`: a cnn on pixels scaled to [0, 1], or a keras.applications backbone,
    which scales raw pixels its own way)."""
    pixels = tabular.ReadImage(column.image, name=f"{column.input}_pixels")(x)
    if c.image.type == "cnn":
        pixels = keras.layers.Rescaling(1 / 255, name=f"{column.input}_rescale")(pixels)
    network = c.image.builder()(c.image, InputSpec(tuple(pixels.shape[1:])), OutputSpec("regression", 1, "linear", ()))
    return _up_to_head(network, f"{column.input}_encoder")(pixels)


def _up_to_head(network, name: str):
    """A family's network without its head: what the head would have read."""
    return keras.Model(network.inputs, network.get_layer("head").input, name=name)


def _text(x, column, c):
    """Raw text -> token ids (the column's training vocabulary) -> the text family's network up to
    its head: that network's penultimate vector."""
    layers = keras.layers
    text = column.text
    vectorize = text_vectorization(**text, vocabulary=column.vocabulary or [""], name=f"{column.input}_words")
    ids = vectorize(x)
    if text["sequence_length"] is None:  # (batch, 1) texts give (batch, 1, time) without a fixed length
        ids = layers.Reshape((-1,), name=f"{column.input}_ids")(ids)
    counts, documents = column.document_counts or (None, None)  # a tfidf encoder's IDF
    spec = InputSpec((text["sequence_length"],), vectorize.vocabulary_size(), counts, documents)
    network = c.text.builder()(c.text, spec, OutputSpec("regression", 1, "linear", ()))
    return _up_to_head(network, f"{column.input}_encoder")(ids)

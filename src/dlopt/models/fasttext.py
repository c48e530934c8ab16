"""`fasttext`: a fastText-style text classifier.

Each token id (a word, or a word n-gram with `data.text.ngrams`) has an embedding; the embeddings
of a text's tokens are averaged (padding masked out) into one vector, then an optional dense stack
and the head. Fast, and on short texts as good as much heavier models: word order enters only
through the n-grams.
"""

from __future__ import annotations

from ..errors import ConfigError
from . import dense_stack, kernel_regularizer, output_head, register, sequence_inputs


@register("fasttext")
def build_fasttext(model_config, input_spec, output_spec):
    import keras

    layers = keras.layers
    if not input_spec.vocabulary_size:
        raise ConfigError(f"model.type: fasttext expects text (token ids from data.text), the data has shape {tuple(input_spec.shape)}")
    regularizer = kernel_regularizer(model_config)
    inputs, x = sequence_inputs(input_spec, model_config.embedding_dim, "fasttext")
    if model_config.token_dropout:
        # One draw per token, shared by its whole embedding: the token is dropped from the average.
        x = layers.Dropout(model_config.token_dropout, noise_shape=(None, input_spec.shape[0], 1), name="token_dropout")(x)
    x = layers.GlobalAveragePooling1D(name="average")(x)  # over the real tokens: the mask hides padding
    if model_config.dropout:
        x = layers.Dropout(model_config.dropout, name="average_dropout")(x)
    x = dense_stack(x, model_config.dense, model_config, regularizer, prefix="dense")
    return keras.Model(inputs, output_head(x, output_spec, regularizer), name="fasttext")

"""`fasttext`: a fastText-style text classifier.

Each token id (a word, or a word n-gram with `data.text.ngrams`) has an embedding; the embeddings
of a text's tokens are averaged (padding masked out) into one vector, then an optional dense stack
and the head. Fast: one lookup and a mean per text; word order enters only through the n-grams.
With `wide`, a linear model of the tokens adds its logits to the head's: averaged per-token weights
(`true`), or the `tfidf` family's TF-IDF-weighted linear model (`tfidf`).
"""

from __future__ import annotations

from .parts import dense_stack, drop_tokens, kernel_regularizer, output_head, text_inputs
from . import pooling  # the module, not its names: importing keras may register the families first


def build_fasttext(model_config, input_spec, output_spec):
    import keras

    layers = keras.layers
    regularizer = kernel_regularizer(model_config)
    inputs, x = text_inputs(model_config, input_spec, "fasttext")  # a dropped token leaves the average
    x = pooling.TokenAverage(name="average")(x)  # over the real tokens: the mask hides padding
    if model_config.dropout:
        x = layers.Dropout(model_config.dropout, name="average_dropout")(x)
    x = dense_stack(x, model_config.dense, model_config, regularizer, prefix="dense")
    if model_config.wide == "tfidf":
        from .tfidf import tfidf_dense

        wide = tfidf_dense(inputs, output_spec.units, input_spec, model_config.sublinear_tf, regularizer, "wide_tfidf")
    else:
        wide = _wide_logits(inputs, model_config, input_spec, output_spec) if model_config.wide else None
    return keras.Model(inputs, output_head(x, output_spec, regularizer, added_logits=wide), name="fasttext")


def _wide_logits(token_ids, model_config, input_spec, output_spec):
    """One weight per token and output, averaged over the text's tokens: a bag-of-words linear
    model beside the low-rank embeddings, with word dropout at the same rate (wide & deep)."""
    import keras

    layers = keras.layers
    x = layers.Embedding(input_spec.vocabulary_size, output_spec.units, mask_zero=True, name="wide")(token_ids)
    x = drop_tokens(x, model_config.token_dropout, input_spec, "wide_token_dropout")
    return pooling.TokenAverage(name="wide_average")(x)

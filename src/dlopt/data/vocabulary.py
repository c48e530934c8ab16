"""Text vocabularies learnt from the training split: a TextVectorization layer adapted on the
training texts, and how many texts hold each token (TF-IDF, `data.text.min_count`)."""

from __future__ import annotations

import numpy as np

from ..errors import RunFailed


def text_vectorization(sequence_length: int | None, ngrams: int, standardize: str, **kwargs):
    """A TextVectorization layer for `data.text`'s settings (`kwargs`: its vocabulary or
    max_tokens, its name)."""
    import keras

    return keras.layers.TextVectorization(
        output_sequence_length=sequence_length,
        ngrams=ngrams if ngrams > 1 else None,
        standardize=None if standardize == "none" else standardize,
        **kwargs,
    )


def adapted_vectorizer(text, texts, count: int, count_documents: bool = False, name: str = "vectorize"):
    """A TextVectorization layer whose vocabulary comes from `texts` only (a tf.data dataset of the
    training split's `count` strings); with `count_documents` (TF-IDF models), also how many
    training texts hold each token id (0 padding, 1 out-of-vocabulary: none) and how many texts
    there are. One pass counts for both this and `min_count`."""
    vectorizer = text_vectorization(text.sequence_length, text.ngrams, text.standardize, max_tokens=text.max_tokens, name=name)
    vectorizer.adapt(texts.batch(1024))
    counts = texts_holding(vectorizer, texts.batch(1024)) if count_documents or text.min_count > 1 else None
    if text.min_count > 1:
        vocabulary = vectorizer.get_vocabulary(include_special_tokens=False)
        kept = counts >= text.min_count
        if not kept.any():
            raise RunFailed(f"data.text.min_count: no word is in {text.min_count} or more training texts; lower it")
        vectorizer.set_vocabulary([token for token, keep in zip(vocabulary, kept) if keep])  # the order kept: ids follow counts
        counts = counts[kept]
    if not count_documents:
        return vectorizer, None
    return vectorizer, (np.concatenate([[0.0, 0.0], counts]).astype(np.float32), count)


def texts_holding(vectorizer, batches) -> np.ndarray:
    """How many texts hold each token of the vectorizer's vocabulary (most frequent first, no special tokens)."""
    import keras
    import tensorflow as tf

    vocabulary = vectorizer.get_vocabulary(include_special_tokens=False)
    config = vectorizer.get_config()
    # the same standardisation, split and n-grams, one 0/1 column per token and text: document counts
    in_text = keras.layers.TextVectorization(
        vocabulary=vocabulary, output_mode="multi_hot", sparse=True, standardize=config["standardize"], split=config["split"], ngrams=config["ngrams"]
    )
    counts = tf.zeros([len(vocabulary) + 1], tf.float32)  # column 0: out-of-vocabulary
    for batch in batches:
        counts += tf.cast(tf.sparse.reduce_sum(in_text(batch), axis=0), tf.float32)
    return counts.numpy()[1:]

"""`tfidf`: the linear baseline text classifiers are measured against, as a Keras model.

A text's tokens (words, and n-grams with `data.text.ngrams`) weighted by TF-IDF as scikit-learn's
TfidfVectorizer weights them (sublinear term frequency 1 + log(count), smooth inverse document
frequency from the training split, each text's vector of unit length), then a dense layer: with no
hidden layers, regularised multinomial logistic regression. The weighting is a layer of the model,
its document frequencies saved in it, so the saved model takes raw text.

`TfIdfDense` is also the wide part of `fasttext` with `wide: tfidf`.
"""

from __future__ import annotations

import numpy as np

from .parts import dense_stack, head_of_logits, kernel_regularizer, output_head, text_token_ids

FIRST_TOKEN = 2  # TextVectorization's ids: 0 padding, 1 out of vocabulary; neither is a term


def inverse_document_frequencies(document_counts: np.ndarray, documents: int) -> np.ndarray:
    """Smooth IDF, as scikit-learn's: ln((1 + n) / (1 + df)) + 1, for every token id."""
    return (np.log((1.0 + documents) / (1.0 + np.asarray(document_counts, dtype=np.float64))) + 1.0).astype(np.float32)


def _register():
    import keras
    import tensorflow as tf

    @keras.saving.register_keras_serializable(package="dlopt")
    class TfIdfDense(keras.layers.Layer):
        """Token ids -> TF-IDF vector (never built dense: a sparse row per text) -> x kernel + bias."""

        def __init__(self, units: int, vocabulary_size: int, sublinear_tf: bool = True, kernel_regularizer=None, **kwargs):
            super().__init__(**kwargs)
            self.units, self.vocabulary_size, self.sublinear_tf = units, vocabulary_size, sublinear_tf
            self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

        def build(self, input_shape):
            self.idf = self.add_weight(name="idf", shape=(self.vocabulary_size,), initializer="ones", trainable=False)
            self.kernel = self.add_weight(name="kernel", shape=(self.vocabulary_size, self.units), initializer="glorot_uniform", regularizer=self.kernel_regularizer)
            self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

        def features(self, token_ids):
            """Each text's TF-IDF vector, a sparse row over the token ids (as scikit-learn's)."""
            ids = tf.cast(token_ids, tf.int64)
            counts = tf.sparse.bincount(ids, minlength=self.vocabulary_size, maxlength=self.vocabulary_size, axis=-1)
            counts = tf.sparse.retain(counts, counts.indices[:, 1] >= FIRST_TOKEN)
            rows, tokens = counts.indices[:, 0], counts.indices[:, 1]
            term = tf.cast(counts.values, self.compute_dtype)
            term = 1.0 + tf.math.log(term) if self.sublinear_tf else term
            weights = term * tf.gather(tf.cast(self.idf, self.compute_dtype), tokens)
            squares = tf.math.unsorted_segment_sum(tf.square(weights), rows, num_segments=tf.shape(ids, out_type=tf.int64)[0])
            weights = weights * tf.math.rsqrt(tf.gather(squares, rows))  # unit length per text
            return tf.SparseTensor(counts.indices, weights, counts.dense_shape)

        def call(self, token_ids):
            kernel = tf.cast(self.kernel, self.compute_dtype)
            return tf.sparse.sparse_dense_matmul(self.features(token_ids), kernel) + tf.cast(self.bias, self.compute_dtype)

        def compute_output_shape(self, input_shape):
            return (input_shape[0], self.units)

        def get_config(self):
            return {
                **super().get_config(),
                "units": self.units,
                "vocabulary_size": self.vocabulary_size,
                "sublinear_tf": self.sublinear_tf,
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer) if self.kernel_regularizer else None,
            }

    @keras.saving.register_keras_serializable(package="dlopt")
    class PathL2(keras.regularizers.Regularizer):
        """L2 of strength 1 / (2 C n), scikit-learn's C on the mean loss of n examples, whose C a
        callback moves along `model.c_path` as training goes (callbacks/regularization.py)."""

        def __init__(self, c: float, examples: int):
            self.examples = int(examples)
            self.strength = keras.Variable(self.l2_of(c), trainable=False, dtype="float32", name="path_l2")

        def l2_of(self, c: float) -> float:
            return 1.0 / (2.0 * c * self.examples)

        def set_c(self, c: float) -> None:
            self.strength.assign(self.l2_of(c))

        def __call__(self, x):
            return self.strength * keras.ops.sum(keras.ops.square(x))

        def get_config(self):
            return {"c": 1.0 / (2.0 * float(self.strength.numpy()) * self.examples), "examples": self.examples}

    return TfIdfDense, PathL2


TfIdfDense, PathL2 = _register()


def tfidf_dense(token_ids, units: int, input_spec, sublinear_tf: bool, regularizer, name: str):
    """`TfIdfDense` over `token_ids`, its IDF set from the training split's document counts."""
    if input_spec.document_counts is None:
        raise ValueError("TF-IDF needs the training split's document counts (InputSpec.document_counts)")
    layer = TfIdfDense(units, input_spec.vocabulary_size, sublinear_tf, regularizer, dtype="float32", name=name)  # sparse products in float32 under any policy
    out = layer(token_ids)
    layer.idf.assign(inverse_document_frequencies(input_spec.document_counts, input_spec.documents))
    return out


def build_tfidf(model_config, input_spec, output_spec):
    import keras

    regularizer = kernel_regularizer(model_config)
    # along a regularisation path the TF-IDF layer's penalty follows C, starting at the path's first
    tfidf_regularizer = PathL2(model_config.c_path[0], input_spec.documents) if model_config.c_path else regularizer
    inputs = text_token_ids(input_spec, "tfidf")
    hidden = model_config.dense
    if not hidden:  # linear: TF-IDF straight into the head's logits
        logits = tfidf_dense(inputs, output_spec.units, input_spec, model_config.sublinear_tf, tfidf_regularizer, "tfidf_linear")
        return keras.Model(inputs, head_of_logits(logits, output_spec), name="tfidf")
    x = keras.layers.Activation(model_config.activation, name="tfidf_activation")(tfidf_dense(inputs, hidden[0], input_spec, model_config.sublinear_tf, tfidf_regularizer, "tfidf_linear"))
    if model_config.dropout:
        x = keras.layers.Dropout(model_config.dropout, name="tfidf_dropout")(x)
    x = dense_stack(x, hidden[1:], model_config, regularizer, prefix="dense")
    return keras.Model(inputs, output_head(x, output_spec, regularizer), name="tfidf")

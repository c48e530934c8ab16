"""`textcnn`: a 1-D convolutional text classifier (Kim, 2014).

Token embeddings, then one Conv1D per kernel size (`kernel_sizes`, `filters` each) sliding over the
words, ReLU, the maximum of each filter over the text, concatenated; dropout and the head. Each
filter learns a phrase pattern of its width and fires wherever in the text it occurs.
"""

from __future__ import annotations

from .parts import dense_stack, kernel_regularizer, output_head, text_inputs


def build_textcnn(model_config, input_spec, output_spec):
    import keras

    layers = keras.layers
    regularizer = kernel_regularizer(model_config)
    # No padding mask: convolutions cannot take one; padding is a token the filters learn to ignore.
    inputs, x = text_inputs(model_config, input_spec, "textcnn", mask=False)
    pooled = []
    for width in model_config.kernel_sizes:
        conv = layers.Conv1D(model_config.filters, width, padding="same", activation=model_config.activation, kernel_regularizer=regularizer, name=f"conv{width}")(x)
        pooled.append(layers.GlobalMaxPooling1D(name=f"conv{width}_max")(conv))
    x = pooled[0] if len(pooled) == 1 else layers.Concatenate(name="phrases")(pooled)
    if model_config.dropout:
        x = layers.Dropout(model_config.dropout, name="phrases_dropout")(x)
    x = dense_stack(x, model_config.dense, model_config, regularizer, prefix="dense")
    return keras.Model(inputs, output_head(x, output_spec, regularizer), name="textcnn")

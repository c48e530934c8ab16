"""`lstm`: stacked LSTM, GRU or SimpleRNN layers over (time, features) inputs or embedded token ids, a dense head."""

from __future__ import annotations

from .parts import dense_stack, kernel_regularizer, output_head, sequence_inputs


def build_lstm(model_config, input_spec, output_spec):
    import keras

    layers = keras.layers
    regularizer = kernel_regularizer(model_config)
    inputs, x = sequence_inputs(input_spec, model_config.embedding_dim, "lstm")
    cell = {"lstm": layers.LSTM, "gru": layers.GRU, "rnn": layers.SimpleRNN}[model_config.cell]
    for i, units in enumerate(model_config.units):
        last = i == len(model_config.units) - 1
        recurrent = cell(
            units,
            return_sequences=not last,  # every layer but the last feeds the whole sequence on
            dropout=model_config.dropout,
            recurrent_dropout=model_config.recurrent_dropout,
            kernel_regularizer=regularizer,
            name=f"{model_config.cell}{i}",
        )
        x = layers.Bidirectional(recurrent, name=f"bi_{model_config.cell}{i}")(x) if model_config.bidirectional else recurrent(x)
    x = dense_stack(x, model_config.dense, model_config, regularizer, prefix="dense")
    return keras.Model(inputs, output_head(x, output_spec, regularizer), name="lstm")

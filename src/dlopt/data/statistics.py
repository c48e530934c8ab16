"""What the training inputs looked like, kept with the run (RUN/inputs.json) so that `dlopt predict`
can bring an input into the same value range and say when one is unlike anything trained on: the
value range, the mean and spread per channel and of each example's mean, the input shape, the
largest value the source gives (255 for 8-bit pixels, 16 for scikit-learn's digits), and for text
the share of words the vocabulary did not know."""

from __future__ import annotations

import numpy as np

SAMPLE = 20_000  # training examples read for the statistics, at most


def _examples(split) -> np.ndarray:
    if split.arrays is not None:
        x = split.arrays[0]
        return x[np.linspace(0, len(x) - 1, min(len(x), SAMPLE)).astype(int)] if len(x) > SAMPLE else x
    chunks, seen = [], 0
    for x, _ in split.dataset.batch(1024).as_numpy_iterator():
        chunks.append(x)
        seen += len(x)
        if seen >= SAMPLE:
            break
    return np.concatenate(chunks)


def input_statistics(train, input_shape: tuple, value_max: float | None, vectorizer=None) -> dict:
    """The statistics of the training split's inputs (a sample of at most SAMPLE examples)."""
    stats: dict = {"shape": list(input_shape)}
    x = _examples(train)
    if vectorizer is not None:  # text: the share of tokens out of the vocabulary (id 1)
        stats["unknown_word_share"] = unknown_share(vectorizer, x[:SAMPLE])
        return stats
    if x.dtype.kind not in "fiub":
        return stats
    x = x.astype(np.float64)
    per_example = x.reshape(len(x), -1).mean(axis=1)
    channels = x.reshape(-1, x.shape[-1]) if x.ndim > 2 else x.reshape(-1, 1)
    stats.update(
        min=float(x.min()),
        max=float(x.max()),
        mean=channels.mean(axis=0).tolist(),
        std=channels.std(axis=0).tolist(),
        example_mean={"mean": float(per_example.mean()), "std": float(per_example.std())},
    )
    if value_max is not None:
        stats["value_max"] = value_max
    return stats


def table_statistics(spec, inputs: dict) -> dict:
    """Tables: each number column's training range, mean and spread, each date column's first and
    last day, each category column's values, each text column's share of unknown words (inputs:
    the model's inputs)."""
    from .tabular import day_number, iso_day

    columns, dates, categories, texts = {}, {}, {}, {}
    for column in spec.columns:
        if column.kind == "numeric":
            values = np.asarray(inputs[column.input], dtype=np.float64).reshape(-1)
            values = values[np.isfinite(values)]
            if values.size:
                columns[column.name] = {"input": column.input, "min": float(values.min()), "max": float(values.max()), "mean": column.mean, "std": float(np.sqrt(column.variance))}
        elif column.kind == "date":
            days = [d for d in map(day_number, np.asarray(inputs[column.input]).reshape(-1).tolist()) if d is not None]
            if days:
                dates[column.name] = {"input": column.input, "first": iso_day(min(days)), "last": iso_day(max(days))}
        elif column.kind == "categorical":
            categories[column.name] = {"input": column.input, "values": column.vocabulary}
        elif column.kind == "text":
            from .vocabulary import text_vectorization

            vectorize = text_vectorization(**column.text, vocabulary=column.vocabulary or [""])
            texts[column.name] = {"input": column.input, "unknown_word_share": unknown_share(vectorize, np.asarray(inputs[column.input]).reshape(-1)[:SAMPLE])}
    return {"columns": columns, "dates": dates, "categories": categories, "texts": texts}


def _token_counts(vectorize, texts) -> tuple[np.ndarray, np.ndarray]:
    """Per text: its tokens (words, n-grams), and those a TextVectorization layer does not know (id 1)."""
    ids = np.asarray(vectorize(np.asarray(texts, dtype=str).reshape(-1)))
    ids = ids.reshape(len(ids), -1)
    return (ids > 0).sum(axis=1), (ids == 1).sum(axis=1)


def unknown_share(vectorize, texts) -> float:
    """The share of all `texts`' tokens that `vectorize` does not know."""
    tokens, unknown = _token_counts(vectorize, texts)
    return float(unknown.sum() / tokens.sum()) if tokens.sum() else 0.0


def unknown_shares(vectorize, texts, empty: float) -> list[float]:
    """Per text, the share of its tokens that `vectorize` does not know; `empty` for a text of none."""
    tokens, unknown = _token_counts(vectorize, texts)
    return [float(u / t) if t else empty for t, u in zip(tokens, unknown)]


def row_warnings(label: str, row: dict, stats: dict, unknown: dict | None = None) -> list[str]:
    """What in a table row the training rows never showed: a number outside its column's training
    range (5% of the span either side), a date outside the training dates (by more than a tenth of
    their span), a category value outside the column's training vocabulary (read as 'other'), a
    text of far more unknown words than the training texts (`unknown`: column -> the row's share)."""
    from .tabular import day_number

    def cell(column):
        return np.asarray(row.get(column["input"], np.nan)).reshape(-1)[0]

    found = []
    for name, column in (stats.get("columns") or {}).items():
        value = float(cell(column))
        span = max(column["max"] - column["min"], 1e-12)
        if np.isfinite(value) and not column["min"] - 0.05 * span <= value <= column["max"] + 0.05 * span:
            found.append(f"{label}: column '{name}' is {value:.4g}, outside its training range {column['min']:.4g} to {column['max']:.4g}")
    for name, column in (stats.get("dates") or {}).items():
        value = str(cell(column))
        day, first, last = day_number(value), day_number(column["first"]), day_number(column["last"])
        margin = max(last - first, 1.0) * 0.1
        if day is not None and not first - margin <= day <= last + margin:
            found.append(f"{label}: column '{name}' is {value}, outside its training dates {column['first']} to {column['last']}")
    for name, column in (stats.get("categories") or {}).items():
        value = str(cell(column))
        if value and value != "nan" and value not in column["values"]:
            found.append(f"{label}: column '{name}' is {value!r}, not among the {len(column['values'])} values the model learnt from training (read as 'other')")
    for name, column in (stats.get("texts") or {}).items():
        if name in (unknown or {}):
            found += text_warning(f"{label}: column '{name}'", unknown[name], column)
    return found


def domain_warnings(label: str, x: np.ndarray, stats: dict) -> list[str]:
    """Why an input `x` (one example, as the model takes it) is unlike the training inputs: its
    values outside their range, its mean far from theirs. Empty when it looks like them."""
    if "min" not in stats or x.dtype.kind not in "fiub":
        return []
    low, high = stats["min"], stats["max"]
    span = max(high - low, 1e-12)
    outside = np.mean((x < low - 0.05 * span) | (x > high + 0.05 * span))
    found = []
    if outside > 0.01:
        found.append(f"{label}: {outside:.0%} of its values lie outside the training inputs' range {low:.4g} to {high:.4g} (this input: {x.min():.4g} to {x.max():.4g})")
    typical = stats["example_mean"]
    z = abs(float(x.mean()) - typical["mean"]) / max(typical["std"], 1e-12)
    if z > 4:
        found.append(f"{label}: its mean value {x.mean():.4g} is {z:.0f} standard deviations from the training inputs' ({typical['mean']:.4g} +- {typical['std']:.2g})")
    return found


def text_warning(label: str, unknown_share: float, stats: dict) -> list[str]:
    """A text whose share of unknown words is far above the training texts'."""
    trained = stats.get("unknown_word_share")
    if trained is None or unknown_share <= max(2 * trained, trained + 0.25):
        return []
    return [f"{label}: {unknown_share:.0%} of its words are unknown to the model ({trained:.0%} in the training texts)"]

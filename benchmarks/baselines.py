"""Strong simple baselines for the shipped configs, on exactly the rows dlopt trains and tests on.

Each task's splits come from dlopt's own data pipeline for the config (same seed, same shuffle,
same slices), so the baselines and `dlopt train` are measured the same way: fitted on the training
split, scored on the test split. scikit-learn fits them.

    python benchmarks/baselines.py          # every task whose data this machine has
    python benchmarks/baselines.py configs/mlp_penguins.yaml configs/cnn_digits.yaml
    python benchmarks/baselines.py configs/fasttext_text.yaml --set data.path=/tmp/dlopt-text/kjv_genres
    python benchmarks/baselines.py configs/cnn_mnist.yaml --set data.source=idx --set data.path=/tmp/mnist/package/data

Text: TF-IDF of words, and of words and bigrams, + logistic regression, its regularisation C picked
on dlopt's validation split (the baseline at its best, as a person tuning it fairly would have it).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def arrays(dataset) -> tuple[object, np.ndarray]:
    """A batched (x, y) pipeline as whole arrays (x a dict of columns for tables)."""
    xs, ys = [], []
    for x, y in dataset.as_numpy_iterator():
        xs.append(x)
        ys.append(y)
    y = np.concatenate(ys)
    if isinstance(xs[0], dict):
        return {k: np.concatenate([x[k] for x in xs]) for k in xs[0]}, y
    return np.concatenate(xs), y


def features(x, table, fit_on=None):
    """Tables: the model's own treatment by hand (mean-imputed, standardised numbers with a missing
    indicator, one-hot categories over the training vocabulary); anything else: flattened values."""
    if table is None:
        return x.reshape(len(x), -1)
    out = []
    for column in table.columns:
        values = x[column.input][:, 0]
        if column.kind == "numeric":
            missing = np.isnan(values)
            out.append(((np.where(missing, column.mean, values) - column.mean) / np.sqrt(column.variance + 1e-7))[:, None])
            if column.has_missing:
                out.append(missing[:, None].astype(float))
        else:
            values = np.array([v.decode() if isinstance(v, bytes) else v for v in values])
            out.append(np.stack([values == category for category in column.vocabulary], axis=1).astype(float))
    return np.concatenate(out, axis=1)


def text_baselines(data, config_path: str) -> dict:
    """TF-IDF (sublinear term frequency) + logistic regression, C chosen on the validation split."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score

    texts = {}
    for role in ("train", "val", "test"):
        x, y = arrays(data.pipelines[role])
        texts[role] = ([t.decode() if isinstance(t, bytes) else str(t) for t in x.reshape(-1)], y.reshape(-1))
    result = {"config": config_path, "train": len(texts["train"][1]), "test": len(texts["test"][1])}
    # dlopt's own tokens (Keras' default: lower case, punctuation deleted, split on whitespace), to
    # tell a difference of words from a difference of fitting
    keras_tokens = dict(tokenizer=lambda text: re.sub(r"[!\"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~']", "", text.lower()).split(), token_pattern=None, lowercase=False)
    for name, ngrams, tokens in (
        ("TF-IDF words + LR", (1, 1), {}),
        ("TF-IDF words and bigrams + LR", (1, 2), {}),
        ("TF-IDF words and bigrams of dlopt's tokens + LR", (1, 2), keras_tokens),
    ):
        started = time.process_time()  # this process's CPU-seconds: the grid's cost, for results per CPU-second
        vectorizer = TfidfVectorizer(ngram_range=ngrams, sublinear_tf=True, min_df=2, **tokens)
        x_train = vectorizer.fit_transform(texts["train"][0])
        x_val, x_test = vectorizer.transform(texts["val"][0]), vectorizer.transform(texts["test"][0])
        scores = {}
        for c in (0.3, 1.0, 3.0, 10.0, 30.0):
            model = LogisticRegression(C=c, max_iter=3000).fit(x_train, texts["train"][1])
            scores[c] = (accuracy_score(texts["val"][1], model.predict(x_val)), model)
        best_c = max(scores, key=lambda c: scores[c][0])
        result[f"{name} (C={best_c:g})"] = accuracy_score(texts["test"][1], scores[best_c][1].predict(x_test))
        result[f"{name}: CPU-seconds of the grid"] = round(time.process_time() - started, 1)
    result["metric"] = "test accuracy"
    return result


def task_baselines(config_path: str, overrides: list[str] = ()) -> dict:
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.metrics import accuracy_score, mean_squared_error
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from dlopt import data as data_module
    from dlopt.config import load_config

    config = load_config(config_path, overrides=list(overrides))
    config.data.augment = []
    data = data_module.build(config, roles=("train", "val", "test"), for_training=False)
    if data.vectorizer is not None:
        return text_baselines(data, config_path)
    x_train, y_train = arrays(data.pipelines["train"])
    x_test, y_test = arrays(data.pipelines["test"])
    x_train, x_test = features(x_train, data.table), features(x_test, data.table)
    if data.label_format in ("onehot",):
        y_train, y_test = y_train.argmax(axis=1), y_test.argmax(axis=1)
    result = {"config": config_path, "train": len(y_train), "test": len(y_test)}
    if data.task == "classification":
        y_train, y_test = y_train.reshape(-1), y_test.reshape(-1)
        for name, model in (("majority class", DummyClassifier()), ("logistic regression", make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)))):
            result[name] = accuracy_score(y_test, model.fit(x_train, y_train).predict(x_test))
        result["metric"] = "test accuracy"
    else:
        for name, model in (("mean", DummyRegressor()), ("linear regression", make_pipeline(StandardScaler(), LinearRegression()))):
            result[name] = float(np.sqrt(mean_squared_error(y_test, model.fit(x_train, y_train).predict(x_test))))
        result["metric"] = "test RMSE"
    return result


ROOT = Path(__file__).resolve().parent.parent


def every_task(text_dir: Path, mnist_dir: Path) -> list[tuple[str, list[str]]]:
    """(config, overrides) of each shipped task whose data is on this machine."""
    tasks = [("configs/cnn_digits.yaml", [])]
    if (mnist_dir / "train-images-idx3-ubyte").is_file():
        tasks.append(("configs/cnn_mnist.yaml", ["data.source=idx", f"data.path={mnist_dir}"]))
    if importlib.util.find_spec("palmerpenguins"):
        tasks.append(("configs/mlp_penguins.yaml", []))
    if Path("/usr/share/datasets/fashion-mnist").is_dir():
        tasks.append(("configs/cnn_fashion_mnist_local.yaml", []))
    for name in ("kjv_genres", "wordnet_nouns"):
        if (text_dir / name / "train.csv").is_file():
            tasks.append(("configs/fasttext_text.yaml", [f"data.path={text_dir / name}"]))
    return tasks


def forecast_baselines(horizon: int = 4) -> None:
    """Persistence, seasonal naive and seasonal naive + trend on the test windows of each series
    benchmarks/forecasts.py trains on, with the same settings (dlopt's own windows and scaling)."""
    import sys
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import forecasts

    from dlopt.config import load_config
    from dlopt.data import timeseries

    folder = Path(tempfile.mkdtemp(prefix="dlopt-baselines-"))
    for i, (name, (rows, season, _)) in enumerate(forecasts.series().items()):
        path = forecasts.write_series(rows, folder / f"{i}.csv")
        settings = load_config(ROOT / "configs" / "lstm_timeseries.yaml", overrides=forecasts.overrides(path, season, horizon)).data.timeseries
        _, series = timeseries.load(path, settings)
        x, y = series.test_windows
        naive = timeseries.naive_forecasts(x, series, settings.horizon, settings.season)
        scores = ", ".join(f"{k.replace('_', ' ')} {timeseries.errors(v, y, series)['rmse']:.4g}" for k, v in naive.items())
        print(f"lstm_timeseries.yaml on {name}: test RMSE over {len(x)} windows, {horizon} steps ahead: {scores}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="*", help="configs to score (none: every task whose data is here)")
    parser.add_argument("--text-dir", type=Path, default=Path("/tmp/dlopt-text"), help="where benchmarks/text_data.py wrote the text sets")
    parser.add_argument("--mnist-dir", type=Path, default=Path("/tmp/mnist/package/data"), help="MNIST's IDX files from npm (see cnn_mnist.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="config override, as for dlopt train")
    args = parser.parse_args()
    tasks = [(config, args.overrides) for config in args.configs] or every_task(args.text_dir, args.mnist_dir)
    for config, overrides in tasks:
        result = task_baselines(str(ROOT / config) if not Path(config).exists() else config, overrides)
        scores = ", ".join(f"{k} {v:.4f}" for k, v in result.items() if isinstance(v, float))
        paths = [o.split("=", 1)[1] for o in overrides if o.startswith("data.path=")]
        on = f" on {paths[0]}" if paths else ""
        print(f"{Path(config).name}{on}: {result['metric']} on {result['test']} test rows ({result['train']} training): {scores}", flush=True)
    if not args.configs:
        if importlib.util.find_spec("statsmodels"):
            forecast_baselines()
        else:
            print("time series: pip install statsmodels for the series benchmarks/forecasts.py uses")


if __name__ == "__main__":
    main()

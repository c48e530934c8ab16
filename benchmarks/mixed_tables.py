"""A real mixed table from Debian's own package index, for measuring models over several kinds of
column at once (no download: `apt-cache dumpavail` reads the index apt already holds).

`debian_packages`: one row per binary package, labelled with its archive section (the sections
with at least 400 packages: libs, python, doc, perl, devel, games, science, ...). Columns:
- `description`: the one-line description (text)
- `installed_size`: kilobytes once installed (number)
- `depends`: how many packages it depends on (number)
- `architecture`: `all` or the machine's (category)
- `maintainer`: the maintainer or team, e-mail dropped (category, many values)
- `tags`: its debtags, space-separated, empty for about half (a set of labels in one cell)
The package's own name is left out: `python3-foo` or `libfoo-dev` would give the section away. The
test split is a fixed fifth chosen by a hash of the source package, so a source's binaries
(`foo`, `foo-data`, `foo-doc`) never straddle the split.

    python benchmarks/mixed_tables.py /tmp/dlopt-mixed              # writes debian_packages/{train,test}.csv
    python benchmarks/mixed_tables.py /tmp/dlopt-mixed --baselines  # and fits scikit-learn baselines on it

Baselines (fitted on train, scored on test): the majority class; TF-IDF of the description + logistic
regression (text alone); gradient boosting over the other columns (numbers, categories, tags);
gradient boosting over TF-IDF features of the description plus the other columns.
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import time
import zlib
from collections import Counter
from pathlib import Path

MIN_PACKAGES = 400  # sections smaller than this are left out
COLUMNS = ["description", "installed_size", "depends", "architecture", "maintainer", "tags", "section"]


def packages() -> list[dict]:
    """Every stanza of `apt-cache dumpavail` as a dict of its fields (continuation lines joined)."""
    text = subprocess.run(["apt-cache", "dumpavail"], capture_output=True, text=True, check=True).stdout
    stanzas = []
    for block in text.split("\n\n"):
        fields, key = {}, None
        for line in block.splitlines():
            if line.startswith((" ", "\t")) and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                fields[key] = value.strip()
        if "Package" in fields:
            stanzas.append(fields)
    return stanzas


def row_of(fields: dict) -> dict:
    depends = [d for d in re.split(r",\s*", fields.get("Depends", "")) if d]
    return {
        "description": fields.get("Description", ""),
        "installed_size": fields.get("Installed-Size", ""),  # empty: missing
        "depends": len(depends),
        "architecture": "all" if fields.get("Architecture") == "all" else "machine",
        "maintainer": re.sub(r"\s*<.*>", "", fields.get("Maintainer", "")),
        "tags": " ".join(t.strip() for t in fields.get("Tag", "").split(",") if t.strip()),
        "section": fields.get("Section", "").split("/")[-1],  # contrib/games -> games
    }


def write(out: Path) -> dict:
    stanzas = packages()
    counts = Counter(row_of(f)["section"] for f in stanzas)
    kept = {section for section, n in counts.items() if n >= MIN_PACKAGES}
    folder = out / "debian_packages"
    folder.mkdir(parents=True, exist_ok=True)
    written = Counter()
    handles = {split: open(folder / f"{split}.csv", "w", newline="") for split in ("train", "test")}
    writers = {split: csv.DictWriter(handle, fieldnames=COLUMNS) for split, handle in handles.items()}
    for writer in writers.values():
        writer.writeheader()
    for fields in stanzas:
        row = row_of(fields)
        if row["section"] not in kept:
            continue
        source = fields.get("Source", fields["Package"]).split(" ")[0]
        split = "test" if zlib.crc32(source.encode()) % 5 == 0 else "train"
        writers[split].writerow(row)
        written[split] += 1
    for handle in handles.values():
        handle.close()
    return {"folder": folder, "classes": len(kept), **written}


def baselines(folder: Path) -> None:
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score

    train, test = (pd.read_csv(folder / f"{split}.csv", keep_default_na=False) for split in ("train", "test"))
    y_train, y_test = train["section"], test["section"]
    print(f"{folder}: {len(train)} train, {len(test)} test, {y_train.nunique()} classes")
    print(f"  majority class: {accuracy_score(y_test, [y_train.mode()[0]] * len(test)):.4f}")

    def timed(name, fit_predict):
        started = time.process_time()
        accuracy = accuracy_score(y_test, fit_predict())
        print(f"  {name}: {accuracy:.4f} ({time.process_time() - started:.0f} CPU-s)")

    def text_alone():
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
        model = LogisticRegression(C=10, max_iter=3000).fit(vectorizer.fit_transform(train["description"]), y_train)
        return model.predict(vectorizer.transform(test["description"]))

    def other_columns(frame, fitted=None):
        """Numbers as they are, architecture 0/1, the 100 commonest maintainers and 300 commonest tags as 0/1 columns."""
        fitted = fitted or {
            "maintainers": [m for m, _ in Counter(train["maintainer"]).most_common(100)],
            "tags": CountVectorizer(token_pattern=r"\S+", binary=True, max_features=300).fit(train["tags"]),
        }
        numbers = np.column_stack([pd.to_numeric(frame["installed_size"], errors="coerce"), frame["depends"], frame["architecture"] == "all"])
        maintainers = np.column_stack([frame["maintainer"] == m for m in fitted["maintainers"]])
        return np.hstack([numbers, maintainers, fitted["tags"].transform(frame["tags"]).toarray()]).astype(np.float32), fitted

    def boosted(with_text: bool):
        x_train, fitted = other_columns(train)
        x_test, _ = other_columns(test, fitted)
        if with_text:
            vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=2, max_features=500)
            x_train = np.hstack([x_train, vectorizer.fit_transform(train["description"]).toarray()])
            x_test = np.hstack([x_test, vectorizer.transform(test["description"]).toarray()])
        model = HistGradientBoostingClassifier(max_iter=200, early_stopping=True, random_state=0).fit(x_train, y_train)
        return model.predict(x_test)

    timed("TF-IDF of the description + logistic regression (text alone)", text_alone)
    timed("gradient boosting over the other columns", lambda: boosted(False))
    timed("gradient boosting over TF-IDF (500 terms) + the other columns", lambda: boosted(True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder to write debian_packages/train.csv and test.csv into")
    parser.add_argument("--baselines", action="store_true", help="also fit and score the scikit-learn baselines")
    args = parser.parse_args()
    written = write(args.out)
    print(f"{written['folder']}: {written['train']} train, {written['test']} test, {written['classes']} classes")
    if args.baselines:
        baselines(written["folder"])


if __name__ == "__main__":
    main()

"""Real mixed tables for measuring models over several kinds of column at once, none downloaded:
Debian's package index (`apt-cache dumpavail` reads what apt already holds) and WordNet 3.0
(`apt-get install wordnet-base`).

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

`wordnet_nouns`: one row per noun synset, labelled with its lexicographer category (noun.animal,
noun.food, ... 25 classes, as benchmarks/text_data.py's text set): `gloss` (the definition and
examples: text), `lemmas` (the synset's words: a set), `relations` (the kinds of pointer it has,
hypernym, part holonym, ...: a set), `words` and `pointers` (their counts: numbers).

`wordnet_verbs` (**held out**: the shipped config is never tuned on it): the same for verb synsets
(15 categories: verb.motion, verb.communication, ...), plus `frames`, the sentence frames the verb
takes ("Somebody ----s something": a set of frame numbers).

    python benchmarks/mixed_tables.py /tmp/dlopt-mixed              # writes <table>/{train,test}.csv for each
    python benchmarks/mixed_tables.py /tmp/dlopt-mixed --baselines  # and fits scikit-learn baselines on each

Baselines (fitted on train, scored on test): the majority class; TF-IDF of the text + logistic
regression (text alone); gradient boosting over the other columns (numbers, categories, sets);
gradient boosting over TF-IDF features of the text plus the other columns.
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

MIN_PACKAGES = 400  # sections smaller than this are left out
WORDNET = Path("/usr/share/wordnet")
NOUN_CATEGORIES = (
    "Tops act animal artifact attribute body cognition communication event feeling food group location motive "
    "object person phenomenon plant possession process quantity relation shape state substance time"
).split()  # lexicographer files 03 to 28 (WordNet's lexnames(5))
VERB_CATEGORIES = (
    "body change cognition communication competition consumption contact creation emotion motion perception "
    "possession social stative weather"
).split()  # lexicographer files 29 to 43


@dataclass
class Table:
    """A table's columns by kind, as the baselines read them."""

    text: str
    numbers: list[str]
    categories: list[str]
    sets: list[str]
    label: str

    @property
    def columns(self) -> list[str]:
        return [self.text, *self.numbers, *self.categories, *self.sets, self.label]


TABLES = {
    "debian_packages": Table("description", ["installed_size", "depends"], ["architecture", "maintainer"], ["tags"], "section"),
    "wordnet_nouns": Table("gloss", ["words", "pointers"], [], ["lemmas", "relations"], "category"),
    "wordnet_verbs": Table("gloss", ["words", "pointers"], [], ["lemmas", "relations", "frames"], "category"),
}


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


def debian_rows() -> list[tuple[str, dict]]:
    """(the source package, the row) of every package in a section of MIN_PACKAGES or more."""
    stanzas = packages()
    counts = Counter(row_of(f)["section"] for f in stanzas)
    kept = {section for section, n in counts.items() if n >= MIN_PACKAGES}
    rows = [(fields.get("Source", fields["Package"]).split(" ")[0], row_of(fields)) for fields in stanzas]
    return [(source, row) for source, row in rows if row["section"] in kept]


def wordnet_rows(part_of_speech: str) -> list[tuple[str, dict]]:
    """(the synset's offset, the row) of every synset in WordNet's data.noun or data.verb."""
    categories, first = (NOUN_CATEGORIES, 3) if part_of_speech == "noun" else (VERB_CATEGORIES, 29)
    rows = []
    for line in (WORDNET / f"data.{part_of_speech}").read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):  # the licence header
            continue
        fields, _, gloss = line.partition(" | ")
        parts = fields.split()
        offset, lexfile, words = parts[0], int(parts[1]), int(parts[3], 16)
        lemmas = parts[4 : 4 + 2 * words : 2]
        at = 4 + 2 * words
        pointers = int(parts[at])
        symbols = parts[at + 1 : at + 1 + 4 * pointers : 4]
        row = {
            "gloss": gloss.strip(),
            "words": words,
            "pointers": pointers,
            "lemmas": " ".join(lemma.lower() for lemma in lemmas),
            "relations": " ".join(sorted({RELATIONS.get(symbol, symbol) for symbol in symbols})),
        }
        if part_of_speech == "verb":
            after = parts[at + 1 + 4 * pointers :]
            row["frames"] = " ".join(sorted({f"f{after[i + 1]}" for i in range(1, 3 * int(after[0]), 3)})) if after else ""
        row["category"] = categories[lexfile - first]
        rows.append((offset, row))
    return rows


# WordNet's pointer symbols (wninput(5)), by name
RELATIONS = {
    "!": "antonym", "@": "hypernym", "@i": "instance_hypernym", "~": "hyponym", "~i": "instance_hyponym", "#m": "member_holonym",
    "#s": "substance_holonym", "#p": "part_holonym", "%m": "member_meronym", "%s": "substance_meronym", "%p": "part_meronym",
    "=": "attribute", "+": "derivation", ";c": "domain_topic", "-c": "member_topic", ";r": "domain_region", "-r": "member_region",
    ";u": "domain_usage", "-u": "member_usage", "*": "entailment", ">": "cause", "^": "also_see", "$": "verb_group",
}  # fmt: skip

SOURCES = {"debian_packages": debian_rows, "wordnet_nouns": lambda: wordnet_rows("noun"), "wordnet_verbs": lambda: wordnet_rows("verb")}


def write(out: Path, name: str) -> dict:
    """`out/name/{train,test}.csv`; the test split a fixed fifth of the keys (by a hash)."""
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    columns = TABLES[name].columns
    written = Counter()
    handles = {split: open(folder / f"{split}.csv", "w", newline="") for split in ("train", "test")}
    writers = {split: csv.DictWriter(handle, fieldnames=columns) for split, handle in handles.items()}
    for writer in writers.values():
        writer.writeheader()
    labels = set()
    for key, row in SOURCES[name]():
        split = "test" if zlib.crc32(key.encode()) % 5 == 0 else "train"
        writers[split].writerow({c: row[c] for c in columns})
        written[split] += 1
        labels.add(row[TABLES[name].label])
    for handle in handles.values():
        handle.close()
    return {"folder": folder, "classes": len(labels), **written}


def baselines(folder: Path, table: Table) -> None:
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score

    train, test = (pd.read_csv(folder / f"{split}.csv", keep_default_na=False) for split in ("train", "test"))
    y_train, y_test = train[table.label], test[table.label]
    print(f"{folder}: {len(train)} train, {len(test)} test, {y_train.nunique()} classes")
    print(f"  majority class: {accuracy_score(y_test, [y_train.mode()[0]] * len(test)):.4f}")

    def timed(name, fit_predict):
        started = time.process_time()
        accuracy = accuracy_score(y_test, fit_predict())
        print(f"  {name}: {accuracy:.4f} ({time.process_time() - started:.0f} CPU-s)")

    def text_alone():
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
        model = LogisticRegression(C=10, max_iter=3000).fit(vectorizer.fit_transform(train[table.text]), y_train)
        return model.predict(vectorizer.transform(test[table.text]))

    def other_columns(frame, fitted=None):
        """Numbers as they are, each category's 100 commonest values and each set's 300 commonest as 0/1 columns."""
        fitted = fitted or {
            **{c: [v for v, _ in Counter(train[c]).most_common(100)] for c in table.categories},
            **{c: CountVectorizer(token_pattern=r"\S+", binary=True, max_features=300, lowercase=False).fit(train[c]) for c in table.sets},
        }
        parts = [np.column_stack([pd.to_numeric(frame[c], errors="coerce") for c in table.numbers])]
        parts += [np.column_stack([frame[c] == v for v in fitted[c]]) for c in table.categories]
        parts += [fitted[c].transform(frame[c]).toarray() for c in table.sets]
        return np.hstack(parts).astype(np.float32), fitted

    def boosted(with_text: bool):
        x_train, fitted = other_columns(train)
        x_test, _ = other_columns(test, fitted)
        if with_text:
            vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=2, max_features=500)
            x_train = np.hstack([x_train, vectorizer.fit_transform(train[table.text]).toarray()])
            x_test = np.hstack([x_test, vectorizer.transform(test[table.text]).toarray()])
        model = HistGradientBoostingClassifier(max_iter=200, early_stopping=True, random_state=0).fit(x_train, y_train)
        return model.predict(x_test)

    timed(f"TF-IDF of the {table.text} + logistic regression (text alone)", text_alone)
    timed("gradient boosting over the other columns", lambda: boosted(False))
    timed("gradient boosting over TF-IDF (500 terms) + the other columns", lambda: boosted(True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder to write <table>/train.csv and test.csv into")
    parser.add_argument("--tables", nargs="+", choices=list(TABLES), default=list(TABLES), help="which tables (default: all)")
    parser.add_argument("--baselines", action="store_true", help="also fit and score the scikit-learn baselines")
    args = parser.parse_args()
    for name in args.tables:
        written = write(args.out, name)
        print(f"{written['folder']}: {written['train']} train, {written['test']} test, {written['classes']} classes")
        if args.baselines:
            baselines(written["folder"], TABLES[name])


if __name__ == "__main__":
    main()

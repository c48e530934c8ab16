"""Two real text-classification data sets from Debian packages, written as CSV folders dlopt reads.

- `wordnet_nouns`: every noun definition (gloss) of WordNet 3.0, labelled with its lexicographer
  category (noun.animal, noun.food, noun.act, ... 25 classes); `apt-get install wordnet-base`.
- `kjv_genres`: every verse of the King James Bible, labelled with the kind of book it comes from
  (law, history, wisdom, prophets, gospels and Acts, epistles, Revelation: 7 classes);
  `apt-get install bible-kjv` (its `bible` command prints the verses).

Held out, to check the configs on text they were not tuned on:

- `fortunes` (`--held-out`): the six largest topic files of the fortune cookies (people,
  definitions, cookie, computers, songs-poems, politics), each cookie labelled with its file;
  `apt-get install fortunes`.

Each folder holds train.csv and test.csv (columns `text`, `label`). The test split is a fixed fifth
chosen by a hash of the synset offset or of the chapter, so a chapter's verses never straddle the
split (neighbouring verses share names and phrases).

    python benchmarks/text_data.py /tmp/dlopt-text [--held-out]
    python benchmarks/text_data.py /tmp/small --sample 4800   # samples of the size of the held-out set
    dlopt train configs/fasttext_text.yaml --set data.path=/tmp/dlopt-text/wordnet_nouns
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import zlib
from pathlib import Path

WORDNET = Path("/usr/share/wordnet")
FORTUNES = Path("/usr/share/games/fortunes")
FORTUNE_TOPICS = ("people", "definitions", "cookie", "computers", "songs-poems", "politics")
# The noun lexicographer files, numbered 03 to 28 (WordNet's lexnames(5)).
NOUN_CATEGORIES = (
    "Tops act animal artifact attribute body cognition communication event feeling food group location motive "
    "object person phenomenon plant possession process quantity relation shape state substance time"
).split()
# Book abbreviations as `bible` prints them, in canonical order, grouped by the kind of book.
KJV_GENRES = {
    "law": "Ge Exo Lev Num Deu",
    "history": "Josh Jdgs Ruth 1Sm 2Sm 1Ki 2Ki 1Chr 2Chr Ezra Neh Est",
    "wisdom": "Job Psa Prv Eccl SSol",
    "prophets": "Isa Jer Lam Eze Dan Hos Joel Amos Obad Jonah Mic Nahum Hab Zep Hag Zec Mal",
    "gospels_acts": "Mat Mark Luke John Acts",
    "epistles": "Rom 1Cor 2Cor Gal Eph Phi Col 1Th 2Th 1Tim 2Tim Titus Phmn Heb Jas 1Pet 2Pet 1Jn 2Jn 3Jn Jude",
    "revelation": "Rev",
}


def in_test(key: str) -> bool:
    """A fixed fifth of the keys, independent of order and of Python's hash seed."""
    return zlib.crc32(key.encode()) % 5 == 0


def wordnet_nouns() -> list[tuple[str, str, str]]:
    """(key, gloss, lexicographer category) for every noun synset."""
    rows = []
    for line in (WORDNET / "data.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):  # the licence header
            continue
        fields, _, gloss = line.partition(" | ")
        offset, lexfile = fields.split()[:2]
        rows.append((offset, gloss.strip(), NOUN_CATEGORIES[int(lexfile) - 3]))
    return rows


def kjv_genres() -> list[tuple[str, str, str]]:
    """(chapter, verse text, genre) for every verse of the King James Bible."""
    genre_of = {book: genre for genre, books in KJV_GENRES.items() for book in books.split()}
    verses = subprocess.run(["bible", "-f", "Ge1:1-Rev22:21"], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in verses.splitlines():
        reference, _, text = line.partition(" ")
        book, chapter = re.fullmatch(r"(\d?[A-Za-z]+)(\d+):\d+", reference).groups()
        rows.append((f"{book}{chapter}", text.strip(), genre_of[book]))
    return rows


def fortunes() -> list[tuple[str, str, str]]:
    """(cookie, cookie, topic file) for every cookie of the six largest topic files."""
    rows = []
    for topic in FORTUNE_TOPICS:
        cookies = (FORTUNES / topic).read_text(encoding="utf-8", errors="replace").split("\n%\n")
        rows += [(text, " ".join(text.split()), topic) for text in (c.strip() for c in cookies) if text]
    return rows


def write(rows, folder: Path) -> dict[str, int]:
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split in ("train", "test"):
        chosen = [(text, label) for key, text, label in rows if in_test(key) == (split == "test")]
        with open(folder / f"{split}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows(chosen)
        counts[split] = len(chosen)
    return counts


DATASETS = {"wordnet_nouns": wordnet_nouns, "kjv_genres": kjv_genres}
HELD_OUT = {"fortunes": fortunes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder to write <data set>/train.csv and test.csv into")
    parser.add_argument("--held-out", action="store_true", help="write the held-out set (fortunes) instead")
    parser.add_argument("--sample", type=int, metavar="ROWS", help="write random samples of the tuning sets instead: ROWS training rows and 4,000 test rows each (to stand for a small set)")
    args = parser.parse_args()
    for name, rows_of in (HELD_OUT if args.held_out else DATASETS).items():
        rows = rows_of()
        counts = write(rows, args.out / name)
        if args.sample:
            import pandas as pd

            for split, size in (("train", args.sample), ("test", 4000)):
                table = pd.read_csv(args.out / name / f"{split}.csv")
                table.sample(min(size, len(table)), random_state=0).to_csv(args.out / name / f"{split}.csv", index=False)
                counts[split] = min(size, len(table))
        print(f"{args.out / name}: {counts['train']} train, {counts['test']} test, {len({r[2] for r in rows})} classes")


if __name__ == "__main__":
    main()

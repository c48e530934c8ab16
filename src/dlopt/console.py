"""The one place dlopt writes to the terminal: results on stdout, progress, notes and warnings on
stderr, folded to the terminal's 80 columns. A leaf: it imports nothing of dlopt's."""

from __future__ import annotations

import textwrap

from rich.console import Console

stderr = Console(stderr=True, highlight=False)
stdout = Console(highlight=False)

LINE_WIDTH = 80
# metric names as the epoch lines, the progress bar and `dlopt compare` shorten them
SHORT_METRIC = {"accuracy": "acc", "top_k_accuracy": "top_k", "macro_f1": "f1", "precision": "prec", "recall": "rec"}


def say(text: str) -> None:
    """A line of progress or a note on stderr: on a terminal folded between words, after any
    progress bar is erased; piped or in a log file, one line as it is."""
    end_live()
    stderr.print(text, soft_wrap=not stderr.is_terminal, markup=False)


def warn(text: str) -> None:
    say(text if text.startswith("warning: ") else f"warning: {text}")


def result(text: str) -> None:
    """A line of the command's result on stdout."""
    stdout.print(text, soft_wrap=True, markup=False)


def wrapped(text: str, indent: str = "") -> str:
    """`text` folded after its commas into lines of at most 80 columns, each starting with `indent`
    (a `name 12/3/4` item is never split)."""
    glued = ", ".join(part.replace(" ", "\xa0") for part in text.split(", "))
    lines = textwrap.wrap(glued, LINE_WIDTH, initial_indent=indent, subsequent_indent=indent + "  ", break_on_hyphens=False, break_long_words=False)
    return "\n".join(line.replace("\xa0", " ") for line in lines)


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


_live: list = []  # displays drawing on stderr now (progress bars), ended before anything else is said


def start_live(display) -> None:
    display.start()
    _live.append(display)


def end_live(display=None) -> None:
    """Stop `display` (every live display when None), erasing a transient bar, so the next line
    starts at the left margin instead of on the bar's line."""
    for shown in [display] if display is not None else list(_live):
        if shown in _live:
            _live.remove(shown)
        shown.stop()

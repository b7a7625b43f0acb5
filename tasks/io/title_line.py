"""The headline on the first line of a plain-text article (the BBC News corpus layout).

Many news `.txt` corpora put the headline on line one, then the body. Left in the body, the
headline is glued to the first sentence ("Safin slumps to shock Dubai loss Marat Safin
suffered…") and ends up in summaries. A first line is taken as the title only when it reads
as one, so hard-wrapped prose and wire headers stay in the body:

- 2 to 20 words and at most 150 characters, with a letter, starting with a capital, a digit
  or a quote;
- no sentence-ending punctuation at its end (".", ",", ";", ":"; "?" and "!" only when a
  blank line follows), not a wire header ("LONDON (Reuters) -", "date 2022-…") nor a
  byline or time stamp ("By …", "Updated …");
- followed by a blank line, or by a line that starts a sentence (capital, digit or quote)
  while line one does not end on a word that continues a sentence ("the", "of", "and", …).
"""

from __future__ import annotations

import re

MAX_TITLE_WORDS = 20
MAX_TITLE_CHARS = 150
_STARTS = re.compile(r"^[\"'“‘(]?[A-Z0-9]")
_NOT_TITLE = re.compile(r"^(By|Updated|Published|Posted|Last updated)\b", re.IGNORECASE)
_WIRE = re.compile(r"^\s*(date\s+\d{4}-|[A-Z][A-Z .'-]+(,[^()]*)?\s*\([A-Za-z .]+\)\s*[-–—])")
# A wrapped line that ends on one of these continues on the next line.
_CONTINUE_WORDS = (
    "a an the of to and or but in on at by for with from as that which who than into over "
    "under after before about between its his her their our your is are was were be been "
    "has have had will would said says mr mrs ms dr st"
)
_CONTINUES = frozenset(_CONTINUE_WORDS.split())


def split_title_line(text: str) -> tuple[str | None, str]:
    """(title, body) when the first non-blank line reads as a headline, else (None, text)."""
    stripped = text.lstrip("\ufeff \t\r\n")
    first, sep, rest = stripped.partition("\n")
    line = first.strip()
    if not sep or not _reads_as_title(line):
        return None, text
    next_line = rest.lstrip(" \t\r").partition("\n")[0].strip()
    blank_follows = not next_line
    if line[-1] in "?!" and not blank_follows:
        return None, text
    if not blank_follows:
        last_word = re.sub(r"\W+$", "", line.split()[-1]).lower()
        if not _STARTS.match(next_line) or last_word in _CONTINUES:
            return None, text
    body = rest.strip("\n")
    if not body.strip():
        return None, text  # a one-line file is all body
    return line, body


def _reads_as_title(line: str) -> bool:
    words = line.split()
    return (2 <= len(words) <= MAX_TITLE_WORDS and len(line) <= MAX_TITLE_CHARS
            and any(ch.isalpha() for ch in line) and bool(_STARTS.match(line))
            and line[-1] not in ".,;:" and not _WIRE.match(line)
            and not _NOT_TITLE.match(line))

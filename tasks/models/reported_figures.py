"""What a results table says happened: this period's figure against the last one's.

Wire earnings reports state their news as a table ("Shr loss 1.20 dlrs vs loss 1.97 dlrs",
"Net 507,000 vs 762,000"). Whether that is good news is a comparison of two numbers, which a
sentence encoder does not make: on the team's Reuters earnings stories the document label
was right on 61 % of clear items (bench/RESULTS.md). The document head reads the direction
found here as three features; it learns what they mean from the labelled documents.

Net decides, then earnings per share, then revenue (the labelling guidelines' rule 3); the
first line of each kind is the period the story leads with. A loss counts below zero.
"""

from __future__ import annotations

import re

# A table line: an optional qualifier, the figure's name, its value, "vs", the prior value.
_LINE = re.compile(
    r"^(?:group\s+|oper(?:ating)?\s+|primary\s+|fully\s+diluted\s+)*"
    r"(?P<kind>net|shr|revs?|revenues?|sales)\b(?P<rest>.*?)\s+vs\.?\s+(?P<prior>.+)$",
    re.IGNORECASE)
_NUMBER = re.compile(r"^\d[\d,]*(?:\.\d+)?$")
_WORDS = {"nil": 0.0, "zero": 0.0, "one": 1.0, "two": 2.0, "three": 3.0, "four": 4.0,
          "five": 5.0, "six": 6.0, "seven": 7.0, "eight": 8.0, "nine": 9.0, "ten": 10.0,
          "eleven": 11.0, "twelve": 12.0}
_SCALE = {"mln": 1e6, "mn": 1e6, "million": 1e6, "billion": 1e9, "bln": 1e9, "cts": 0.01,
          "ct": 0.01, "cents": 0.01}
_PRIORITY = ("net", "shr", "revs")
FEATURE_NAMES = ("figures_compared", "figures_up", "figures_down")


def _value(words: list[str]) -> float | None:
    """The signed amount a table cell states ("loss 1.20 dlrs", "profit 57 cts", "nil")."""
    sign = 1.0
    for k, word in enumerate(words):
        w = word.lower().strip(".,;:()")
        if w == "loss":
            sign = -1.0
        elif _NUMBER.match(w) or w in _WORDS:
            amount = float(w.replace(",", "")) if w not in _WORDS else _WORDS[w]
            unit = words[k + 1].lower().strip(".,;:()") if k + 1 < len(words) else ""
            return sign * amount * _SCALE.get(unit, 1.0)
        elif w in ("not", "n.a.", "na", "nm"):
            return None
    return None


def _kind(name: str) -> str:
    name = name.lower()
    return "revs" if name.startswith(("rev", "sales")) else name


def reported_change(units: list[str]) -> int | None:
    """+1 when the first results table in `units` reports the figure up on the prior
    period, -1 down, 0 unchanged; None when no unit is such a table line."""
    found: dict[str, int] = {}
    for unit in units:
        match = _LINE.match(unit.strip())
        if not match:
            continue
        kind = _kind(match["kind"])
        if kind in found:
            continue
        now, before = _value(match["rest"].split()), _value(match["prior"].split())
        if now is None or before is None:
            continue
        found[kind] = (now > before) - (now < before)
    for kind in _PRIORITY:
        if kind in found:
            return found[kind]
    return None


def figure_features(units: list[str]) -> list[float]:
    """`FEATURE_NAMES` of a document's units: whether a table compares periods, and which
    way its deciding figure went."""
    change = reported_change(units)
    if change is None:
        return [0.0, 0.0, 0.0]
    return [1.0, float(change > 0), float(change < 0)]

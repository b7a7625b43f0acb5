"""Text cleaning, wire-header parsing and sentence splitting: the `clean` step.

Everything here is a plain function of its input, so the step can be tested without Prefect
and gives the same result whichever worker runs it. Inputs are news texts from mixed sources
(web scrapes with markup and mojibake, 1980s wire copy hard-wrapped at ~70 columns, TASS-style
exports with a `date YYYY-MM-DD` prefix), and the model steps downstream want one clean body
per document with paragraphs as "\\n\\n" and nothing else but single spaces.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import re
import threading
import unicodedata
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import ftfy
import pysbd
from pysbd.lang.english import English

from tasks.record import Document

# pysbd hands pattern strings to `re` on every call, and with the cleaning patterns they
# overflow `re`'s 512-entry compile cache: recompiling took ~18% of splitting time
# (bench/RESULTS.md). CPython has no public knob for the cache size; where the private one
# exists, raise it (a few MB of compiled patterns at most).
if isinstance(getattr(re, "_MAXCACHE", None), int) and re._MAXCACHE < 4096:
    re._MAXCACHE = 4096

# --------------------------------------------------------------------------------------------
# clean_text
# --------------------------------------------------------------------------------------------

# Only entities that end in ";" are decoded: html.unescape alone also expands legacy names
# without the semicolon ("&not", "&para"), which mangles URLs and ampersands in plain text.
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")

_DROP_CONTENT = re.compile(
    r"<(script|style|noscript|template|head)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL
)
_COMMENT = re.compile(r"<!--.*?-->|<!\[CDATA\[|\]\]>|<![A-Za-z][^>]*>|<\?[^>]*\?>", re.DOTALL)
_TAG = re.compile(
    r"<(/?)([A-Za-z][A-Za-z0-9]*)"
    r"((?:\s+[^\s<>=/\"']+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'<>]+))?)*)\s*/?>"
)


def _wordset(words: str) -> frozenset[str]:
    """A frozenset from a space-separated word list (keeps long tables readable)."""
    return frozenset(words.split())


_BLOCK_TAGS = _wordset(
    "address article aside blockquote br caption dd details div dl dt fieldset figcaption "
    "figure footer form h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section summary "
    "table tbody tfoot thead tr ul"
)
_INLINE_TAGS = _wordset(
    "a abbr audio b bdi bdo big body button center cite code col colgroup data del dfn em "
    "font head html i iframe img input ins kbd label link mark meta nobr option picture q s "
    "samp select small source span strike strong sub sup svg td textarea th time title tt u "
    "var video wbr"
)
_VOID_TAGS = _wordset("br col hr img input link meta source wbr")
# Elements whose closing tag HTML lets authors leave out.
_OPTIONAL_CLOSE = _wordset("dd dt li option p td th tr")
# Reuters marks companies and tickers as "&lt;Texaco Inc>", "&lt;I>", "&lt;DD>"; decoded, they
# look like tags, but they are content. Such a bracketed run keeps its text, and a short
# upper-case one counts as markup only with evidence (attributes, a closing tag, a repeat).
_BRACKETED_NAME = re.compile(r"<([A-Z][^<>]{0,80}?)>")


_INVISIBLE = (
    "\u00ad"  # soft hyphen
    "\u200b\u200c\u200d\u2060\ufeff"  # zero-width space / non-joiner / joiner, word joiner, BOM
    "\u200e\u200f\u061c"  # LRM, RLM, ALM marks
    "\u202a\u202b\u202c\u202d\u202e"  # bidi embeddings and overrides
    "\u2066\u2067\u2068\u2069"  # bidi isolates
)
# Every Unicode space separator (category Zs) except U+0020 itself.
_SPACES_ZS = "\u00a0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u202f\u205f\u3000"


def _translation_table() -> dict[int, str | None]:
    """Control, invisible and exotic-space characters mapped to what the text should hold."""
    table: dict[int, str | None] = {}
    for cp in list(range(0x00, 0x20)) + list(range(0x7F, 0xA0)):
        table[cp] = None
    table[ord("\n")] = "\n"
    table[ord("\t")] = " "
    for ch in "\r\v\f\x85\u2028\u2029":
        table[ord(ch)] = "\n"
    for ch in _INVISIBLE:
        table[ord(ch)] = None
    for ch in _SPACES_ZS:
        table[ord(ch)] = " "
    return table


_TRANSLATE = _translation_table()

_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n")
_SPACES = re.compile(r" {2,}")
# Wire copy is wrapped near 70 columns; a "line" far longer than any wrap width means the
# source put one paragraph per line, so its single newlines are paragraph breaks.
_WRAP_MAX = 100


def _decode_entities(text: str) -> str:
    """Decode HTML entities, twice at most, so double-escaped feeds ("&amp;lt;") come out."""
    for _ in range(2):
        if "&" not in text:
            break
        decoded = _ENTITY.sub(lambda m: html.unescape(m.group()), text)
        if decoded == text:
            break
        text = decoded
    return text


def _unbracket(m: re.Match[str]) -> str:
    """The name inside a non-tag bracket, unless it spans a paragraph break."""
    return m.group() if "\n\n" in m.group(1) else " ".join(m.group(1).split())


def _markup_tags(text: str) -> list[re.Match[str]]:
    """Tag matches that really are HTML, not bracketed names that happen to share a tag name."""
    found = [m for m in _TAG.finditer(text) if m.group(2).lower() in _BLOCK_TAGS | _INLINE_TAGS]
    lowered = text.lower()
    counts: dict[str, int] = {}
    for m in found:
        counts[m.group(2).lower()] = counts.get(m.group(2).lower(), 0) + 1
    tags = []
    for m in found:
        name = m.group(2).lower()
        if (
            m.group(1)  # a closing tag
            or "=" in m.group(3)  # attributes
            or name in _VOID_TAGS
            or f"</{name}" in lowered
            or (name in _OPTIONAL_CLOSE and (m.group(2).islower() or counts[name] > 1))
        ):
            tags.append(m)
    return tags


def _strip_markup(text: str) -> str:
    """Remove HTML tags; block-level tags become paragraph breaks.

    When block tags are present the text is treated as HTML, where source newlines and
    indentation mean nothing; they are collapsed first so the un-wrapping below does not read
    HTML source indentation as paragraph starts. Blank lines are kept as breaks either way.
    """
    if "<" not in text:
        return text
    text = _DROP_CONTENT.sub(" ", text)
    text = _COMMENT.sub(" ", text)
    tags = _markup_tags(text)
    if tags and any(m.group(2).lower() in _BLOCK_TAGS for m in tags):
        text = "\n\n".join(" ".join(part.split()) for part in _BLANK_LINE.split(text))
        tags = _markup_tags(text)
    pieces: list[str] = []
    pos = 0
    for m in tags:
        name = m.group(2).lower()
        pieces.append(text[pos : m.start()])
        if name in _BLOCK_TAGS:
            pieces.append("\n\n")
        elif name in ("td", "th", "img"):
            pieces.append(" ")
        pos = m.end()
    pieces.append(text[pos:])
    return _BRACKETED_NAME.sub(_unbracket, "".join(pieces))


def _join_wrapped(lines: list[str]) -> list[str]:
    """Paragraphs from the lines of one block: joined if hard-wrapped, else one per line."""
    if len(lines) > 1 and max(len(line) for line in lines[:-1]) > _WRAP_MAX:
        return lines
    out = lines[0]
    for line in lines[1:]:
        # "well-\nknown" is a compound split by the wrap, not two words.
        if len(out) > 1 and out[-1] == "-" and out[-2].isalpha() and line[:1].islower():
            out += line
        else:
            out += " " + line
    return [out]


def _normalise_whitespace(text: str) -> str:
    """Un-hard-wrap and collapse spaces; paragraphs end up separated by exactly "\\n\\n".

    A paragraph starts after a blank line or at a line that begins with indentation (1987
    wire copy indents each paragraph); every other line continues the one before it.
    """
    paragraphs: list[str] = []
    block: list[str] = []
    for line in text.split("\n"):
        stripped = _SPACES.sub(" ", line.strip())
        if not stripped or (line[:1] == " " and block):
            if block:
                paragraphs.extend(_join_wrapped(block))
            block = [stripped] if stripped else []
        else:
            block.append(stripped)
    if block:
        paragraphs.extend(_join_wrapped(block))
    return "\n\n".join(paragraphs)


def clean_text(raw: str) -> str:
    """Readable plain text from a raw news string.

    Order matters: entities are decoded before ftfy (mojibake can hide behind "&frac14;"),
    markup is removed before invisible characters (so a "\\n" inside a tag never leaks), and
    NFC runs again at the end because entity decoding and removals can leave decomposed runs.
    """
    text = _clean_once(raw)
    # Each pass can expose more to fix (ftfy decodes "Ü†" as mojibake only once the
    # neighbouring NBSP is gone, an entity may spell out markup): repeat to a fixed point, so
    # that cleaning clean text changes nothing. Ordinary text is stable after one pass.
    for _ in range(_MAX_PASSES - 1):
        again = _clean_once(text)
        if again == text:
            break
        text = again
    return text


_MAX_PASSES = 4


def _clean_once(raw: str) -> str:
    text = _decode_entities(raw)
    text = ftfy.fix_text(text, unescape_html=False)
    text = _strip_markup(text)
    text = text.translate(_TRANSLATE)
    text = unicodedata.normalize("NFC", text)
    return _normalise_whitespace(text)


# --------------------------------------------------------------------------------------------
# parse_header
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Header:
    """What a wire-story header said, and the body with the header and trailers removed."""

    published_date: dt.date | None
    dateline: str | None
    agency: str | None
    body: str


_AGENCIES: dict[str, str] = {
    name.lower(): name
    for name in (
        "TASS", "ITAR-TASS", "Reuters", "AP", "AFP", "Interfax", "Xinhua", "CNN", "UPI",
        "Bloomberg", "dpa", "ANSA", "Kyodo", "Yonhap", "RIA Novosti", "PTI", "IANS", "ANI",
        "EFE", "Anadolu", "Jiji", "Bernama", "Antara", "Ukrinform", "UNIAN", "Sputnik", "IRNA",
        "WAM", "MENA", "KCNA", "CNA", "APA", "PAP", "CTK", "MTI", "Belga", "ANP", "Lusa",
        "BelTA", "Kazinform", "Trend", "Tanjug", "RIA", "TASR", "NTB", "TT", "Ritzau", "STT",
        "Prensa Latina", "Notimex", "Agencia Brasil",
    )
}
_AGENCIES.update({
    "reuter": "Reuters",
    "associated press": "AP",
    "the associated press": "AP",
    "agence france-presse": "AFP",
    "agence france presse": "AFP",
    "deutsche presse-agentur": "dpa",
    "kyodo news": "Kyodo",
    "yonhap news agency": "Yonhap",
    "press trust of india": "PTI",
    "united press international": "UPI",
    "bloomberg news": "Bloomberg",
    "anadolu agency": "Anadolu",
    "ria-novosti": "RIA Novosti",
})

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\b\.?"
)
_MDATE = rf"(?i:{_MONTH}[ ]+\d{{1,2}}\b|\d{{1,2}}[ ]+{_MONTH})"
_WORD = r"[^\W\d_][\w'’./&-]*"
_DASH = r"(?:--|[-–—―])"

_DATE_LINE = re.compile(r"\s*(?i:date):?[ \t]+(\d{4})-(\d{1,2})-(\d{1,2})\b[ \t]*\n?\s*")
_DATELINE = re.compile(
    rf"""
    (?P<place>{_WORD}(?:[ ]{_WORD}){{0,5}})[ ]?
    (?:,[ ]+(?!{_MDATE})(?P<region>{_WORD}(?:[ ]{_WORD}){{0,3}}))?
    (?:,?[ ]+(?P<mdate>{_MDATE}))?
    [ ]*\.?[ ]*
    (?:
        /(?P<slot>[^/\n]{{1,40}})/[ ]*[.:]?[ ]*(?:{_DASH}[ ]*)?
      | \((?P<paren>[^()\n]{{1,40}})\)[ ]*(?:{_DASH}|:)[ ]*
      | (?P<dash>{_DASH})(?:[ ]+|$|(?=\n)|(?=[A-Z"“]))
    )
    """,
    re.VERBOSE,
)
_BARE_AGENCY = re.compile(
    rf"/(?P<slot>[^/\n]{{1,40}})/[ ]*[.:]?[ ]*(?:{_DASH}[ ]*)?"
    rf"|\((?P<paren>[^()\n]{{1,40}})\)[ ]*(?:{_DASH}|:)[ ]*"
)
# A title-case "place" starting with one of these is a sentence, not a dateline.
_NOT_PLACE = _wordset(
    "a an and as at but by for from in last next of on since the this today tomorrow tonight "
    "until yesterday monday tuesday wednesday thursday friday saturday sunday"
)

# Where end-of-text boilerplate may begin: a paragraph start or right after a sentence end.
_TRAILER_START = r"(?:^|\n\n|(?<=[.!?\"”')\]])[ ])"
# One sentence of boilerplate: no sentence break inside, so a trailer pattern that matches at
# the start of a one-paragraph text cannot swallow the real sentences after it.
_ONE_SENTENCE = r"(?:(?![.!?][ ])[^\n]){0,250}"
_TRAILERS = (
    # 1987 wire sign-off ("Reuter", "REUTER...", once "REUTERS"), alone or after the last
    # sentence.
    re.compile(r"(?:^|\n\n)[ ]*(?i:reuters?)[ .…]*$"),
    re.compile(r"(?<=[.!?\"”')\]])[ ]+(?:REUTER|Reuter|reuter)[ .…]*$"),
    re.compile(
        r"[ ]*\((?i:additional[ ]+)?(?i:reporting|writing|editing|compiled|compiling|research"
        r"|translated|translation|production|graphics?)\b[^()]{0,400}\)[ ]*$"
    ),
    re.compile(
        _TRAILER_START
        + r"(?:©|\((?i:c)\)[ ]*\d{4}|Copyright[ ]+(?:©[ ]*|\((?i:c)\)[ ]*)?\d{4})"
        + _ONE_SENTENCE
        + r"(?:[.!?][ ]+(?i:all rights reserved))?[.!]?[ ]*$"
    ),
    re.compile(_TRAILER_START + r"(?i:all rights reserved)\.?[ ]*$"),
    re.compile(
        _TRAILER_START
        + r"(?:Read more|Read also|Follow us on|Click here|READ MORE|FOLLOW US|CLICK HERE)\b"
        + _ONE_SENTENCE
        + r"$"
    ),
)


def _place_ok(place: str, strong: bool) -> bool:
    """Whether `place` can be a dateline city: all upper-case always; lower/title only when the
    rest of the header is strong evidence (an /AGENCY/ slot, a known agency, a month-day)."""
    letters = [c for c in place if c.isalpha()]
    if not letters:
        return False
    if all(c.isupper() for c in letters):
        return True
    if not strong:
        return False
    words = place.split()
    if words[0].lower() in _NOT_PLACE:
        return False
    if all(c.islower() for c in letters):
        return True
    return all(w[:1].isupper() for w in words)


def _agency(name: str, slot: bool) -> str:
    """Canonical agency name; unknown names as written (upper-cased in the /X/ slot form)."""
    name = " ".join(name.split())
    known = _AGENCIES.get(name.lower())
    if known:
        return known
    return name.upper() if slot else name


def _strip_trailers(body: str) -> str:
    """Drop sign-offs and boilerplate at the end only, repeatedly (they come stacked)."""
    while True:
        before = body
        for pattern in _TRAILERS:
            body = pattern.sub("", body).rstrip()
        if body == before:
            return body


def _parse_dateline(text: str) -> tuple[str | None, str | None, int]:
    """(dateline, agency, end offset) of a dateline/agency header at the start of `text`."""
    m = _DATELINE.match(text)
    if m:
        place, slot, paren = m.group("place"), m.group("slot"), m.group("paren")
        if slot is not None:
            ok = _place_ok(place, strong=True)
            agency = _agency(slot, slot=True)
        elif paren is not None:
            known = paren.strip().lower() in _AGENCIES
            ok = _place_ok(place, strong=known)
            agency = _agency(paren, slot=False)
        else:
            ok = m.group("mdate") is not None and _place_ok(place, strong=True)
            agency = None
        if ok:
            return place.upper(), agency, m.end()
    m = _BARE_AGENCY.match(text)
    if m:
        name = m.group("slot") or m.group("paren")
        if name.strip().lower() in _AGENCIES:
            return None, _agency(name, slot=m.group("slot") is not None), m.end()
    return None, None, 0


def parse_header(text: str) -> Header:
    """Split a wire-story header (date line, dateline, agency) and trailers off the body.

    Only the start of the text is read for the header and only the end for trailers, so
    parentheses and dashes in ordinary sentences are never taken for either. Text without
    any of them comes back unchanged.
    """
    published: dt.date | None = None
    start = 0
    m = _DATE_LINE.match(text)
    if m:
        try:
            published = dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            published = None
        start = m.end()
    rest = text[start:].lstrip()
    dateline, agency, end = _parse_dateline(rest)
    body = rest[end:] if (m or end) else text
    stripped = _strip_trailers(body)
    if m or end or stripped != body:
        body = stripped.strip()
    return Header(published_date=published, dateline=dateline, agency=agency, body=body)


# --------------------------------------------------------------------------------------------
# split_sentences
# --------------------------------------------------------------------------------------------

# pysbd's Segmenter keeps the text of the current call on the instance (`original_text`,
# read back when mapping sentences to spans), so one instance must not serve two threads at
# once. It is cheap to call but not to build, hence one shared instance behind a lock.
_SEGMENTER_LOCK = threading.Lock()


class _FastEnglish(English):
    """pysbd's English rules, with its abbreviation pass skipping what cannot apply.

    For every abbreviation that occurs anywhere in a line as a substring ("al", "is", "no",
    "p" occur in nearly every line), pysbd scans the line for each word starting with it and
    runs a substitution of the whole line per match, though every substitution needs the
    abbreviation followed by a period. Offering it only the abbreviations whose
    "<abbr>." occurs in the line (and every dotted one, such as "e.g", whose regex can match
    more than its literal text) gives the same splits in less than half the time
    (bench/RESULTS.md; tests/test_clean.py checks the splits against plain pysbd).
    """

    class AbbreviationReplacer(English.AbbreviationReplacer):
        def search_for_abbreviations_in_string(self, text):
            lowered = text.lower()
            rules = self.lang.Abbreviation
            keep = [a for a in rules.ABBREVIATIONS
                    if not a.strip().isalnum() or f"{a.strip()}." in lowered]
            full, self.lang = self.lang, SimpleNamespace(Abbreviation=SimpleNamespace(
                ABBREVIATIONS=keep, PREPOSITIVE_ABBREVIATIONS=rules.PREPOSITIVE_ABBREVIATIONS,
                NUMBER_ABBREVIATIONS=rules.NUMBER_ABBREVIATIONS))
            try:
                return super().search_for_abbreviations_in_string(text)
            finally:
                self.lang = full


def reference_segmenter() -> pysbd.Segmenter:
    """Plain pysbd English, as published: what `_FastEnglish` must agree with."""
    return pysbd.Segmenter(language="en", clean=False)


@functools.lru_cache(maxsize=1)
def _segmenter() -> pysbd.Segmenter:
    """The process-wide English segmenter (built on first use)."""
    segmenter = reference_segmenter()
    segmenter.language_module = _FastEnglish
    return segmenter


# pysbd is super-linear on long paragraphs (measured: 225,000 chars of "Mr. Smith e.g. "
# took 104 s; 2 MB of plain prose did not finish in 6 min), so a paragraph longer than
# `_PARAGRAPH_CAP` is cut into pieces of at most `_PIECE_CHARS` first, at the last likely
# sentence end (a lower-case word, then . ! or ?, a space and a capital), else at a space.
# A sentence still longer than `MAX_SENTENCE_CHARS` (no punctuation at all) is cut at spaces:
# the models read ~256 tokens of a sentence, about 1,000 characters of English.
# The most characters of one document the models read (sentences past it are not split,
# embedded or scored; `text` keeps them): chosen by `python -m bench.extreme_lengths`.
MAX_MODEL_CHARS = 100_000
_PARAGRAPH_CAP = 8000
_PIECE_CHARS = 4000
MAX_SENTENCE_CHARS = 1000
_LIKELY_END = re.compile(r"(?<=[a-z]{3}[.!?])[\"'”’)\]]*[ ]+(?=[\"“‘(]?[A-Z])")


def _cut(text: str, limit: int, boundary: re.Pattern[str] | None) -> tuple[list[str], int]:
    """`text` in pieces of at most `limit` chars, and how many cuts fell inside a sentence."""
    pieces: list[str] = []
    forced = 0
    while len(text) > limit:
        window = text[: limit + 1]
        cut = -1
        if boundary is not None:
            ends = [m.end() for m in boundary.finditer(window, limit // 2)]
            cut = ends[-1] if ends else -1
        if cut <= 0:
            forced += 1
            cut = window.rfind(" ", limit // 2) + 1 or limit  # no space: a hard cut
        pieces.append(text[:cut].strip())
        text = text[cut:].lstrip()
    pieces.append(text)
    return [p for p in pieces if p], forced


# pysbd marks positions with these characters internally and deletes them from its output,
# and drops any sentence it altered: masked (same length) before it runs, and the sentences
# are cut from the original text at pysbd's boundaries, so no character is ever lost.
_PYSBD_SENTINELS = str.maketrans(dict.fromkeys("ȸȹ☉☈☇☄∯♨☏✂⎋ᓰᓱᓳᓴᓷᓸ⌬", "x"))


def _segment(segmenter: pysbd.Segmenter, piece: str) -> list[str]:
    """Sentences of one piece of a paragraph: pysbd's boundaries, the original's text."""
    masked = piece.translate(_PYSBD_SENTINELS)
    with _SEGMENTER_LOCK:
        parts = segmenter.segment(masked)
    bounds = [0]
    for part in parts:
        part = part.strip()
        start = masked.find(part, bounds[-1]) if part else -1
        if start >= 0 and start + len(part) > bounds[-1]:
            bounds.append(start + len(part))
    bounds.append(len(piece))
    return [piece[a:b].strip() for a, b in zip(bounds, bounds[1:], strict=False)
            if piece[a:b].strip()]


def split_sentences_counted(text: str) -> tuple[list[str], int]:
    """Sentences of `text` and the number of cuts made inside overlong sentences."""
    segmenter = _segmenter()
    sentences: list[str] = []
    forced = 0
    for paragraph in text.split("\n\n"):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        pieces = [paragraph]
        if len(paragraph) > _PARAGRAPH_CAP:
            pieces, n = _cut(paragraph, _PIECE_CHARS, _LIKELY_END)
            forced += n
        for piece in pieces:
            for part in _segment(segmenter, piece):
                part = part.strip()
                if len(part) > MAX_SENTENCE_CHARS:
                    cut, n = _cut(part, MAX_SENTENCE_CHARS, None)
                    sentences.extend(cut)
                    forced += n
                elif part:
                    sentences.append(part)
    return sentences, forced


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`; a paragraph break always ends a sentence; none is longer than
    `MAX_SENTENCE_CHARS`."""
    return split_sentences_counted(text)[0]


# --------------------------------------------------------------------------------------------
# clean_document
# --------------------------------------------------------------------------------------------

_META_DATE_KEYS = ("published_date", "date", "published")


def _meta_date(meta: dict[str, Any]) -> dt.date | None:
    """The first parseable ISO date among the usual metadata keys, if any."""
    for key in _META_DATE_KEYS:
        value = meta.get(key)
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str) and value.strip():
            s = value.strip()
            try:
                return dt.datetime.fromisoformat(s).date()
            except ValueError:
                pass
            try:
                return dt.date.fromisoformat(s[:10])
            except ValueError:
                continue
    return None


def without_leading_title(text: str, title: str) -> str:
    """`text` less a copy of `title` at its start (inputs that repeat the headline in the
    body), so the headline never reaches the sentences, the summary or the models twice."""
    words = title.split()
    if not words:
        return text
    pattern = r"\s*" + r"\s+".join(re.escape(w) for w in words) + r"(?:\s*[.:|–—-])?\s+"
    m = re.match(pattern, text, flags=re.IGNORECASE)
    if m is None or not text[m.end():].strip():
        return text
    return text[m.end():]


def model_read_limit(text: str, max_chars: int | None) -> str:
    """The part of `text` the models read: all of it, or its first `max_chars` characters
    cut at the last sentence end (else space) in the second half of that span."""
    if max_chars is None or len(text) <= max_chars:
        return text
    window = text[: max_chars + 1]
    ends = [m.end() for m in _LIKELY_END.finditer(window, max_chars // 2)]
    cut = max(ends[-1] if ends else -1, window.rfind("\n\n", max_chars // 2))
    if cut <= 0:
        cut = window.rfind(" ", max_chars // 2) + 1 or max_chars
    return text[:cut].rstrip()


def _add_note(doc: Document, note: str) -> None:
    # Its own key: an input field called `note` stays the input's.
    old = doc.meta.get("textdigest_note")
    doc.meta["textdigest_note"] = f"{old}; {note}" if old else note


def clean_document(doc: Document, max_model_chars: int | None = None) -> Document:
    """Fill the clean-step fields of `doc` in place and return it.

    The header's own date wins over metadata: it was written with the story, while feed
    metadata is often the crawl or export date. `doc.text` keeps the whole body; the
    sentences (what the models read) stop at `max_model_chars`, noted in `meta`.
    """
    header = parse_header(clean_text(doc.raw_text))
    doc.text = header.body
    doc.published_date = header.published_date or _meta_date(doc.meta)
    doc.dateline = header.dateline
    doc.agency = header.agency
    if doc.title is not None:
        doc.title = clean_text(doc.title)
        doc.text = without_leading_title(doc.text, doc.title)
    readable = model_read_limit(doc.text, max_model_chars)
    doc.sentences, cuts = split_sentences_counted(readable)
    if cuts:  # said, not silent: the row's sentences are not all the author's
        _add_note(doc, f"{cuts} cut(s) inside sentences longer than {MAX_SENTENCE_CHARS} "
                       "characters")
    if len(readable) < len(doc.text):
        _add_note(doc, f"models read the first {len(readable):,} of {len(doc.text):,} "
                       f"characters (max_model_chars {max_model_chars:,})")
    return doc

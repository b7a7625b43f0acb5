"""Text cleaning: markup, entities, mojibake, invisible characters, whitespace.

A plain function of its input: the same result on any worker.
"""

from __future__ import annotations

import html
import re
import unicodedata

import ftfy

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


def wordset(words: str) -> frozenset[str]:
    """A frozenset from a space-separated word list (keeps long tables readable)."""
    return frozenset(words.split())


_BLOCK_TAGS = wordset(
    "address article aside blockquote br caption dd details div dl dt fieldset figcaption "
    "figure footer form h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section summary "
    "table tbody tfoot thead tr ul"
)
_INLINE_TAGS = wordset(
    "a abbr audio b bdi bdo big body button center cite code col colgroup data del dfn em "
    "font head html i iframe img input ins kbd label link mark meta nobr option picture q s "
    "samp select small source span strike strong sub sup svg td textarea th time title tt u "
    "var video wbr"
)
_VOID_TAGS = wordset("br col hr img input link meta source wbr")
# Elements whose closing tag HTML lets authors leave out.
_OPTIONAL_CLOSE = wordset("dd dt li option p td th tr")
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


# A ticker right after its company's name ("RYKOFF-SEXTON INC <RYK>", "Texaco Inc <TX>"):
# kept apart from the name, in parentheses, so the name does not end in it.
_TICKER = re.compile(r"[A-Z][A-Z0-9.]{0,5}")
_NAME_BEFORE = re.compile(r"[A-Z][\w.&'-]*[ ]$")


def _unbracket(m: re.Match[str]) -> str:
    """The name inside a non-tag bracket, unless it spans a paragraph break; a ticker after
    a name stays bracketed, in parentheses."""
    if "\n\n" in m.group(1):
        return m.group()
    if _TICKER.fullmatch(m.group(1)) and _NAME_BEFORE.search(m.string, 0, m.start()):
        return f"({m.group(1)})"
    return " ".join(m.group(1).split())


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



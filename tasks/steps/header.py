"""Wire-story headers: date, dateline, agency; and the trailers after the body."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from tasks.steps.text import wordset


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
_NOT_PLACE = wordset(
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



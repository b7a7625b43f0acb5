"""Site furniture glued into the text: page labels a scraper kept without punctuation.

"… two years of delays Read more The mayor and …": a link label between two paragraphs lost
its line break, and the whole sentence then reads as boilerplate (it may not be summarised,
and a short article made of such sentences was rejected as `boilerplate_only`). A known label
is cut where it looks like a label, not prose: capitalised as on a page ("Read more",
"READ MORE"), not after a word that cannot end a sentence ("to", "the", "who"), and followed by
a line end or a capitalised word. "I want to read more books" stays. A plain function of its
input.
"""

from __future__ import annotations

import re

from tasks.steps.text import wordset

# News agencies and photo libraries named after "Image copyright" (case-sensitive: "AP", "PA").
_AGENCY = (
    r"(?-i:Associated Press|Getty Images|PA Media|PA Wire|Reuters|AFP|AP|EPA(?:-EFE)?|PA|"
    r"Alamy|Shutterstock|Bloomberg|Xinhua|Anadolu|BBC|dpa|Getty)"
)
_NETWORK = (
    r"(?:Twitter|X|Facebook|Instagram|LinkedIn|YouTube|TikTok|Threads|Bluesky|Mastodon|"
    r"Telegram|WhatsApp|Google News|Flipboard)"
)
_NEWSLETTER = r"(?:our|the)(?: [\w-]+){0,3}? newsletters?"

# The labels, as regular expressions (matched ignoring case; the first letter must be a capital).
FURNITURE: tuple[str, ...] = (
    r"read (?:more|also|next)",
    rf"sign up(?: (?:for|to) {_NEWSLETTER}| now| here| today)?",
    rf"subscribe(?: to {_NEWSLETTER}| now| here| today)",
    # "Image copyright Reuters", "Image source, Getty Images", or up to the caption label
    rf"image (?:copyright|source),? "
    rf"(?:{_AGENCY}(?:/{_AGENCY})*\b|(?:(?![.!?] )[^\n]){{1,60}}?(?= image caption))",
    r"image (?:copyright|source|caption)",
    r"click here(?: for more(?: (?:information|details|news))?)?",
    rf"follow us(?: on {_NETWORK}(?:(?:,| and| or| &) {_NETWORK})*)?",
    r"share this (?:article|story|page|post)",
    r"(?:story continues below )?advertisement",
    r"continue reading(?: the main story)?",
    r"scroll down for video",
    r"related(?::| (?:articles|stories|topics|content|coverage)\b)",
)
_LABEL = re.compile(
    r"(?<!\S)(?P<label>" + "|".join(FURNITURE) + r")"
    r"(?:[ ]*[:.!»›>…|]+)?"  # "Read more »", "Advertisement."
    r"(?=$|\n|[ ]+[\"“‘'(\[]?(?P<next>\S+))",
    re.IGNORECASE,
)
# Words no sentence ends with: a label after one is a word of the sentence ("want to Read
# More", "readers who Read More Books", "the Advertisement Standards Council"), not furniture.
_PROSE_BEFORE = wordset(
    "a an the to of in on for at by with from into about and or nor but not no this that these "
    "those our your their his her its my we you they i who which whose whom where when if than "
    "as so because while is are was were be been will would can could should may might must do "
    "does did has have had"
)
_LAST_WORD = re.compile(r"(?<!\S)(\S+)[ ]*$")
_BREAKS = re.compile(r"[ ]*\n\n\s*")


def _looks_like_label(text: str, m: re.Match[str]) -> bool:
    """Whether the match reads as a page label: capitalised, not inside a phrase of prose,
    before a capitalised word or a line end, and an upper-case label not inside upper-case
    text ("VOTERS WHO READ MORE NEWS"; "SIGN UP FOR OUR NEWSLETTER LONDON (Reuters)" is cut)."""
    label, following = m.group("label"), m.group("next")
    if not label[0].isupper():
        return False
    if following is not None and not following[0].isupper():
        return False
    m_before = _LAST_WORD.search(text, max(0, m.start() - 40), m.start())
    before = m_before.group(1) if m_before else ""
    if before.lower() in _PROSE_BEFORE:
        return False
    return not (label.isupper() and _upper_word(following) and _upper_word(before))


def _upper_word(word: str | None) -> bool:
    return bool(word) and word.isupper() and sum(c.isalpha() for c in word) > 1


def cut_furniture(text: str) -> tuple[str, list[str]]:
    """`text` less the page labels in it, and the labels cut as written ("Read more »"), in order.

    A label between two pieces of text becomes a paragraph break (where its link or box
    stood), so the sentence before it ends there; text without labels comes back unchanged.
    """
    cut: list[str] = []
    pieces: list[str] = []
    pos = 0
    for m in _LABEL.finditer(text):
        if not _looks_like_label(text, m):
            continue
        pieces.append(text[pos:m.start()])
        pieces.append("\n\n")
        cut.append(" ".join(m.group().split()))
        pos = m.end()
    if not cut:
        return text, []
    pieces.append(text[pos:])
    return _BREAKS.sub("\n\n", "".join(pieces)).strip(), cut

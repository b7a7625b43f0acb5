"""Encoding detection of .txt input: short Western legacy texts stay Western (a Latin-1
"£15.8m" must not read as cp932), real CJK texts keep their code page, UTF-16 is found with
or without a BOM, and the encoding and its confidence reach the document's meta."""

from __future__ import annotations

import pytest

from tasks.io.ingest import IngestOptions, UndecodableError, decode_text, iter_items
from tasks.record import Document, Reject

SHORT_CP1252 = "The club paid £15.8m for the striker – a “record” fee."
LATIN1 = "José Müller übernimmt in Málaga; señor Peña está contento con el niño."
ARTICLE_CP1252 = (
    "Manchester United have agreed a £15.8m (€18.4m) fee with Borussia Dortmund for the "
    "21-year-old midfielder, according to people close to the deal. The club’s chief "
    "executive said on Tuesday that the signing was “a statement of intent” for the coming "
    "season – one in which they expect to compete on four fronts. Supporters outside the "
    "ground were less convinced: “We’ve heard it all before,” said one season-ticket holder, "
    "who has followed the team since 1987. The player, whose café-owning parents emigrated "
    "from Zürich, is expected to undergo a medical later this week… if all goes to plan."
)

CJK = [
    ("cp932", "政府は来年度の予算案を閣議決定した。防衛費は過去最大となる見通しだ。"),
    ("cp932", "東京の天気は晴れです。明日は雨が降るでしょう。ソフトウェアの表示に問題があります。"),
    ("euc_jp", "政府は来年度の予算案を閣議決定した。防衛費は過去最大となる見通しだ。"),
    ("euc_jp", "東京の天気は晴れです。明日は雨が降るでしょう。"),
    ("gbk", "国家统计局周一公布的数据显示，今年第三季度经济增长速度略高于市场预期。"),
    ("gb18030", "今天北京的天气很好，我们一起去公园散步吧。专家认为消费仍是主要动力。"),
    ("big5", "行政院今天通過明年度總預算案，國防經費創下歷史新高，將送立法院審議。"),
    ("big5", "今天台北的天氣很好，我們一起去公園散步吧。"),
    ("euc_kr", "정부는 내년도 예산안을 국무회의에서 의결했다. 국방비는 역대 최대 규모다."),
    ("euc_kr", "오늘 서울의 날씨는 맑습니다. 내일은 비가 올 것 같습니다."),
]


@pytest.mark.parametrize(
    ("text", "codec"),
    [
        (SHORT_CP1252, "cp1252"),
        ("Arsenal completed a £15.8m signing.", "latin-1"),  # the reported case
        ("Señor Núñez", "latin-1"),  # the detector alone says cp1006 (Urdu)
        (LATIN1, "latin-1"),
        (ARTICLE_CP1252, "cp1252"),
    ],
)
def test_western_legacy_text_reads_as_cp1252(text, codec):
    decoded = decode_text(text.encode(codec))
    assert decoded.text == text
    assert decoded.encoding == "cp1252"
    assert 0.0 < decoded.confidence <= 1.0


@pytest.mark.parametrize(("codec", "text"), CJK)
def test_cjk_text_keeps_its_code_page(codec, text):
    raw = text.encode(codec)
    decoded = decode_text(raw)
    assert decoded.text == text, decoded.encoding
    assert raw.decode(decoded.encoding) == text
    assert decoded.encoding != "cp1252"
    assert 0.0 < decoded.confidence <= 1.0


@pytest.mark.parametrize(
    ("codec", "expected"),
    [("utf-16", "utf-16"), ("utf-16-le", "utf-16-le"), ("utf-16-be", "utf-16-be"),
     ("utf-32", "utf-32")],
)
def test_utf16_and_utf32(codec, expected):
    raw = ARTICLE_CP1252.encode(codec)
    if codec == "utf-16":  # with a BOM, both byte orders
        for bom_codec, bom in (("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff")):
            decoded = decode_text(bom + ARTICLE_CP1252.encode(bom_codec))
            assert (decoded.text, decoded.encoding, decoded.confidence) == (
                ARTICLE_CP1252, "utf-16", 1.0)
    decoded = decode_text(raw)
    assert (decoded.text, decoded.encoding) == (ARTICLE_CP1252, expected)


def test_short_utf16_le_without_bom():
    decoded = decode_text(SHORT_CP1252.encode("utf-16-le"))
    assert (decoded.text, decoded.encoding) == (SHORT_CP1252, "utf-16-le")


@pytest.mark.parametrize("codec", ["utf-8", "utf-8-sig"])
def test_utf8_with_and_without_bom(codec):
    text = SHORT_CP1252 + " 東京 – Zürich"
    assert decode_text(text.encode(codec)) == (text, "utf-8", 1.0)


@pytest.mark.parametrize(
    "raw",
    [bytes(range(256)) * 8, b"\x89PNG\r\n\x1a\n" + bytes(range(64)) * 4,
     bytes([0, 1, 2, 3, 0, 0, 7, 0]) * 100,
     bytes(b for i in range(400) for b in (i % 32, 0))],  # int16 array: NULs alternate
)
def test_binary_still_raises(raw):
    with pytest.raises(UndecodableError):
        decode_text(raw)


def test_meta_records_encoding_and_confidence(tmp_path):
    (tmp_path / "short.txt").write_bytes(SHORT_CP1252.encode("cp1252"))
    (tmp_path / "article.txt").write_bytes(ARTICLE_CP1252.encode("cp1252"))
    (tmp_path / "ja.txt").write_bytes(CJK[0][1].encode("cp932"))
    (tmp_path / "plain.txt").write_bytes(SHORT_CP1252.encode("utf-8"))
    (tmp_path / "nobom16.txt").write_bytes(SHORT_CP1252.encode("utf-16-le"))
    items = list(iter_items(tmp_path, IngestOptions(title_line=False)))
    assert not [i for i in items if isinstance(i, Reject)]
    docs = {d.source: d for d in items if isinstance(d, Document)}
    for name, text, encoding in [("short.txt", SHORT_CP1252, "cp1252"),
                                 ("article.txt", ARTICLE_CP1252, "cp1252"),
                                 ("ja.txt", CJK[0][1], "cp932"),
                                 ("nobom16.txt", SHORT_CP1252, "utf-16-le")]:
        doc = docs[name]
        assert doc.raw_text == text
        assert set(doc.meta) == {"encoding", "encoding_confidence"}
        assert doc.meta["encoding"] == encoding
        assert isinstance(doc.meta["encoding_confidence"], float)
        assert 0.0 < doc.meta["encoding_confidence"] <= 1.0
    assert docs["plain.txt"].meta == {}  # UTF-8 records nothing, as before

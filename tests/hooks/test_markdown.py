import pytest

from cds_service.hooks.markdown import escape


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "[click](javascript:alert(1))",
        "![x](http://evil/x.png)",
        "**bold** _it_ `code`",
        "| a | b |",
        "# heading",
        "line one\n\n- list\n> quote",
    ],
)
def test_no_html_or_markdown_survives(hostile):
    out = escape(hostile)
    assert "<" not in out
    assert "\n" not in out
    for token in ("](", "**", "`", "|", "# ", "> "):
        assert token not in out.replace("\\" + token[0], "")


def test_plain_text_stays_readable():
    assert escape("Diffuse enlargement of the pancreas") == "Diffuse enlargement of the pancreas"


def test_long_text_is_cut():
    assert len(escape("a" * 1000, limit=50)) == 50


@pytest.mark.parametrize(
    "char",
    [
        "\u202e",
        "\u202a",
        "\u202d",
        "\u2066",
        "\u2067",
        "\u2068",
        "\u2069",
        "\u200b",
        "\u200c",
        "\u200d",
        "\u200e",
        "\u200f",
        "\ufeff",
        "\u061c",
        "\u2060",
        "\u00ad",
        "\u180e",
    ],
)
def test_bidi_overrides_and_invisible_characters_are_removed(char):
    # U+202E etc. would let record text display reversed or hide words (visual spoofing of card text).
    out = escape(f"no{char} malignancy")
    assert char not in out
    assert out == "no malignancy"


def test_inline_text_keeps_dots_and_dashes_but_no_markup():
    assert escape("IgG4 2.43 g/L, soft-tissue #1 +", inline=True) == "IgG4 2.43 g/L, soft-tissue #1 +"
    out = escape("<b>x</b> [a](javascript:y) **b** | c ~~d~~", inline=True)
    assert "<" not in out and "](" not in out.replace("\\]", "") and "**" not in out.replace("\\*", "")
    assert "|" not in out.replace("\\|", "") and "~~" not in out.replace("\\~", "")

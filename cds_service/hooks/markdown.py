"""Escaping record text for card Markdown: no HTML and no Markdown syntax may come from the record."""

from __future__ import annotations

import re
from typing import Final

_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")
_INLINE_SPECIALS = re.compile(r"([\\`*_{}\[\]()!|~>])")
"""Inside a line, ``#``, ``+``, ``-`` and ``.`` cannot open a block (heading, list): they stay as they are."""
_WHITESPACE = re.compile(r"\s+")
_CONTROL = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f"
    # Invisible and direction-changing characters: they could hide words of record text or display it
    # reversed (visual spoofing). Soft hyphen, Arabic letter mark, Mongolian vowel separator, zero-width
    # space/joiners, LRM/RLM, bidi embeddings and overrides (U+202A-U+202E),
    # word joiner and invisible operators, bidi isolates (U+2066-U+2069), deprecated format characters, BOM.
    "\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]"
)
MAX_PHRASE: Final = 200


def escape(text: str, limit: int = MAX_PHRASE, *, inline: bool = False) -> str:
    """Render untrusted text inert in Markdown that clients may render with raw HTML allowed.

    Control, invisible and bidirectional-override characters are removed, HTML metacharacters become
    entities, Markdown punctuation is backslash-escaped, whitespace and line breaks collapse to single
    spaces (so text cannot open a block or break a table), and long text is cut.
    ``inline=True`` is for text the caller places after other text on the same line (never at a line or
    table-cell start): there the block-only characters ``# + - .`` are left unescaped, for readability.
    """
    flat = _WHITESPACE.sub(" ", _CONTROL.sub("", text)).strip()
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    flat = flat.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
    return (_INLINE_SPECIALS if inline else _MARKDOWN_SPECIALS).sub(r"\\\1", flat)

"""The card as a clinician reads it, in plain text: for the command-line demo."""

from __future__ import annotations

import re
from typing import Any

from cds_service.cards import EXTENSION_KEY
from cds_service.domains import DOMAIN_LABELS, Domain

_ESCAPES = re.compile(r"\\(.)")


def _plain(markdown: str) -> str:
    """Undo our own Markdown escaping and emphasis for a terminal (the text stays inert there)."""
    text = _ESCAPES.sub(r"\1", markdown).replace("**", "")
    return text.replace("&lt;", "<").replace("&quot;", '"').replace("&amp;", "&")


def render_text(cards: list[dict[str, Any]]) -> str:
    """A terminal rendering of the response: summary, indicator, domain table, exclusions, suggestions."""
    if not cards:
        return "No card: nothing to consider for this patient and these orders."
    out: list[str] = []
    for card in cards:
        out += [f"[{card['indicator'].upper()}] {card['summary']}", ""]
        classification = card.get("extension", {}).get(EXTENSION_KEY)
        if classification:
            out.append(f"{'Domain':<28}{'Points':>14}  Finding")
            for domain in Domain:
                d = classification["domains"][domain.value]
                points = str(d["points"]) if d["assessed"] else "not assessed"
                out.append(f"{DOMAIN_LABELS[domain]:<28}{points:>14}  {d['item']}")
            out.append(
                f"{'Total':<28}{classification['total']:>14}  threshold {classification['threshold']}, "
                f"classification {classification['classification']}, entry {classification['entryCriterion']}"
            )
            for exclusion in classification["exclusions"]:
                out.append(f"Exclusion {exclusion['id']}: {exclusion['status']}")
        for suggestion in card.get("suggestions", []):
            out.append(f"Suggestion: {suggestion['label']}")
        out += ["", "Detail:", _plain(card.get("detail", "")), ""]
    return "\n".join(out)

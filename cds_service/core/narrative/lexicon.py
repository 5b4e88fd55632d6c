"""The reader's lexicons: versioned TOML data files under ``data/``, compiled once at import.

``lexicon.toml`` holds concepts, synonyms, anatomical anchors, the qualifiers section 2 of CLINICAL_SPEC
requires (as vetoes and needs) and section headings; ``cues.toml`` holds the assertion cues with their
scope rules. The code elsewhere in this package holds only matching logic.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

from cds_service.core.findings import Concept

_I = re.IGNORECASE

Hints = tuple[str, ...]


def _load(name: str) -> dict[str, Any]:
    data = resources.files(__package__).joinpath("data", name).read_text(encoding="utf-8")
    return tomllib.loads(data)


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile one lexicon pattern (case-insensitive)."""
    return re.compile(pattern, _I)


def _opt(table: dict[str, Any], key: str) -> re.Pattern[str] | None:
    value = table.get(key)
    return compile_pattern(value) if value else None


@dataclass(frozen=True, slots=True)
class FamilyLexicon:
    """An organ family's words: abnormality (``abn``) words count only near a location (``loc``) word."""

    name: str
    loc: re.Pattern[str]
    abn: re.Pattern[str]
    window: int
    loc_hints: Hints
    abn_hints: Hints
    blocker: re.Pattern[str] | None
    needs: re.Pattern[str] | None
    veto: re.Pattern[str] | None
    extra: dict[str, re.Pattern[str]]


@dataclass(frozen=True, slots=True)
class StandaloneTerm:
    """A term that names its concept on its own ("storiform", "splenomegaly")."""

    concept: Concept
    pattern: re.Pattern[str]
    hints: Hints
    detail: str | None = None
    veto: re.Pattern[str] | None = None
    need: re.Pattern[str] | None = None
    paired: bool = False


@dataclass(frozen=True, slots=True)
class CueRule:
    """An assertion cue: what it asserts, which way it looks, how far, and the concepts it never governs."""

    pattern: re.Pattern[str]
    kind: str
    direction: str
    window: int
    hints: Hints
    exempt: frozenset[Concept]
    yields_to_history: bool = False
    """"Previously described X has resolved": a historical mention, not a negated one."""
    needs_before: re.Pattern[str] | None = None
    """A pattern that must end right before the cue ("favour X over" for "over")."""


_LEX: Final = _load("lexicon.toml")
_CUES: Final = _load("cues.toml")
VERSION: Final[str] = f"lexicon {_LEX['version']}, cues {_CUES['version']}"

_FAMILY_KEYS = {"loc", "abn", "window", "loc_hints", "abn_hints", "blocker", "needs", "veto"}
FAMILIES: Final[dict[str, FamilyLexicon]] = {
    name: FamilyLexicon(
        name=name,
        loc=compile_pattern(t["loc"]),
        abn=compile_pattern(t["abn"]),
        window=int(t["window"]),
        loc_hints=tuple(t["loc_hints"]),
        abn_hints=tuple(t["abn_hints"]),
        blocker=_opt(t, "blocker"),
        needs=_opt(t, "needs"),
        veto=_opt(t, "veto"),
        extra={k: compile_pattern(v) for k, v in t.items() if k not in _FAMILY_KEYS},
    )
    for name, t in _LEX["families"].items()
}

AORTA: Final[dict[str, re.Pattern[str]]] = {
    k: compile_pattern(v) for k, v in _LEX["aorta"].items() if isinstance(v, str)
}
AORTA_HINTS: Final[Hints] = tuple(_LEX["aorta"]["abn_hints"])

STANDALONE: Final[tuple[StandaloneTerm, ...]] = tuple(
    StandaloneTerm(
        concept=Concept(t["concept"]),
        pattern=compile_pattern(t["pattern"]),
        hints=tuple(t["hints"]),
        detail=t.get("detail"),
        veto=_opt(t, "veto"),
        need=_opt(t, "need"),
        paired=bool(t.get("paired", False)),
    )
    for t in _LEX["standalone"]
)

_CCA = _LEX["cholangiocarcinoma"]
CCA: Final = compile_pattern(_CCA["pattern"])
CCA_HINTS: Final[Hints] = tuple(_CCA["hints"])
CCA_SUSPICIOUS: Final = compile_pattern(_CCA["suspicious"])
CCA_SUSPICIOUS_HINTS: Final[Hints] = tuple(_CCA["suspicious_hints"])
BILIARY_CONTEXT: Final = compile_pattern(_CCA["biliary_context"])
MIMIC_BEFORE: Final = compile_pattern(_CCA["mimic"])

RIM: Final = compile_pattern(_LEX["capsule_rim"]["pattern"])
RIM_HINTS: Final[Hints] = tuple(_LEX["capsule_rim"]["hints"])
RIM_NEEDS: Final = compile_pattern(_LEX["capsule_rim"]["needs"])

_LAT = _LEX["laterality"]
LATERALITY: Final = compile_pattern(_LAT["pattern"])
LAT_BARRIER: Final = compile_pattern(_LAT["barrier"])
LAT_MAX_CHARS: Final[int] = int(_LAT["max_chars"])
LAT_REACH_CHARS: Final[int] = int(_LAT["reach_chars"])

SKIP_HEADINGS: Final = compile_pattern(r"(?:" + "|".join(_LEX["sections"]["skip"]) + r")")
ORGAN_HEADINGS: Final[tuple[tuple[re.Pattern[str], str], ...]] = tuple(
    (compile_pattern(k), v) for k, v in _LEX["sections"]["organs"].items()
)


def _expand(pattern: str) -> str:
    for key, value in _CUES["vocab"].items():
        pattern = pattern.replace("{" + key + "}", value)
    return pattern


CUE_RULES: Final[tuple[CueRule, ...]] = tuple(
    CueRule(
        pattern=compile_pattern(_expand(c["pattern"])),
        kind=c["kind"],
        direction=c["direction"],
        window=int(c["window"]),
        hints=tuple(c["hints"]),
        exempt=frozenset(Concept(x) for x in c.get("exempt", [])),
        yields_to_history=bool(c.get("yields_to_history", False)),
        needs_before=_opt(c, "needs_before"),
    )
    for c in _CUES["cue"]
)
TERMINATORS: Final[dict[str, re.Pattern[str]]] = {
    k: compile_pattern(v) for k, v in _CUES["terminators"].items()
}

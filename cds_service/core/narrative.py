"""Rule-based reader of imaging and pathology narrative: text -> ``TextFinding`` list.

Pure Python, no I/O, no logging of text. Pipeline per report:

1. ``split_sentences``: newline/list/header aware, abbreviation safe.
2. Concept mentions: standalone terms ("storiform", "splenomegaly") and organ families where an
   abnormality word (ABN) must co-occur with a location word (LOC) within a short window of the same
   clause ("stricture of the common hepatic duct", "pancreas is diffusely enlarged").
3. Assertion (ConText-style): cues scope forward (pre) or backward (post) until a terminator or a
   token window runs out; pseudo-cues ("no change", "not only", "prior CT") mask the cues they overlap.
   Precedence: negated > hypothetical > uncertain > historical. A historical cue is overridden by a
   present-state cue in the clause ("previously described stricture, unchanged").

Assertion decisions (documented here because they are judgement calls):
- "likely", "probable", "suggestive of", "favoured", "presumed", "concerning for" -> uncertain.
- "consistent with", "compatible with", "in keeping with", "known" -> affirmed.
- "unlikely", "resolved", "no longer seen", "was excluded", "free of" -> negated.
- "rule out", "evaluate for", "to assess for", "if" -> hypothetical.
- "no change in", "no increase in", "not only" are pseudo-negations: the finding is affirmed.
- Plural paired organs without a side ("the parotid glands", "the kidneys") are bilateral.
- A CBD stricture with no stated level is proximal (``detail="level-unstated"``); "distal" or
  "intrapancreatic" makes it ``BILIARY_DISTAL``.
- Every cholangiocarcinoma mention also yields ``CARCINOMA`` with the same assertion.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

from cds_service.core.findings import Assertion, Concept, Laterality, TextFinding

__all__ = ["extract_findings", "split_sentences"]

_I = re.IGNORECASE
_MAX_CHUNK = 1000  # a "sentence" longer than this is split: bounds the quadratic pairing work
_TOKEN_RE = re.compile(r"\S+")


def _c(pattern: str, flags: int = _I) -> re.Pattern[str]:
    return re.compile(pattern, flags)


def _at_word(alternatives: str) -> str:
    r"""``\b(?:alternatives)`` for alternatives that EACH begin with ``\b``: the same matches, but a scan
    rejects a position inside a word with one test instead of trying every alternative there (~3x faster).
    """
    return rf"\b(?:{alternatives})"


# Speed: most patterns match in few sentences, and a failed case-insensitive regex scan still costs
# microseconds per pattern. Each pattern therefore carries "hints": lower-case literals at least one of
# which occurs in ANY match (they are words the pattern spells out, outside any optional part), so a
# plain substring test on the lower-cased sentence can skip the scan without changing the result.
# Hints must not contain whitespace (patterns use \s+) and must be re-checked when a pattern changes.
_Hints = tuple[str, ...]
# Case-insensitive matching also folds these four non-ASCII letters onto ASCII ones ("ſ" matches "s"),
# which ``str.lower`` does not: a sentence holding one is scanned without the shortcut.
_FOLDS_TO_ASCII = ("\u0130", "\u0131", "\u017f", "\u212a")


def _hint_text(sentence: str) -> str | None:
    """The lower-cased sentence for hint tests, or None when hints cannot be trusted for it."""
    if not sentence.isascii() and any(ch in sentence for ch in _FOLDS_TO_ASCII):
        return None
    return sentence.lower()


def _may_match(low: str | None, hints: _Hints) -> bool:
    """False only when the pattern with these hints cannot match the sentence ``low`` was made from."""
    if low is None:
        return True
    for hint in hints:  # noqa: SIM110 - runs ~50 times a sentence: any() + genexpr is ~2x slower
        if hint in low:
            return True
    return False


# ---------------------------------------------------------------------------------------------------
# Sentence splitting
# ---------------------------------------------------------------------------------------------------

_ABBREVIATIONS = frozenset(
    {
        "approx", "e.g", "i.e", "eg", "ie", "vs", "dr", "mr", "mrs", "ms", "fig", "no", "nos", "cf",
        "etc", "al", "st", "ca", "resp", "incl", "max", "min", "est", "pt", "hx", "dx", "sx", "s/p",
        "mt", "sr", "jr", "prof", "dept", "vol", "ref",
    }
)  # fmt: skip
_LIST_MARKER_RE = _c(r"^\s*(?:\(?\d{1,2}[.)]|[-•*–])\s+")
_HEADER_RE = re.compile(r"^\s*[A-Z][A-Z0-9 /&()-]{1,40}:\s*")
_BOUNDARY_RE = re.compile(r"[.!?]+[\"')\]]?\s+")
_PREV_WORD_RE = re.compile(r"([A-Za-z0-9/.]+)\.?$")


def _segments(text: str) -> list[str]:
    """Join soft-wrapped lines; start a new segment at blank lines, list items and headers."""
    segments: list[str] = []
    current: list[str] = []
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = raw.strip()
        if not line:
            if current:
                segments.append(" ".join(current))
                current = []
            continue
        starts_new = bool(_LIST_MARKER_RE.match(line) or _HEADER_RE.match(line))
        if current and (starts_new or current[-1].endswith((".", ":", ";", "!", "?"))):
            segments.append(" ".join(current))
            current = []
        current.append(line)
    if current:
        segments.append(" ".join(current))
    return segments


def _strip_markers(sentence: str) -> str:
    prev = None
    while prev != sentence:
        prev = sentence
        sentence = _HEADER_RE.sub("", sentence, count=1)
        sentence = _LIST_MARKER_RE.sub("", sentence, count=1)
    return sentence.strip()


def _chunk(sentence: str) -> Iterable[str]:
    while len(sentence) > _MAX_CHUNK:
        cut = sentence.rfind(" ", 0, _MAX_CHUNK)
        cut = cut if cut > _MAX_CHUNK // 2 else _MAX_CHUNK
        yield sentence[:cut]
        sentence = sentence[cut:].lstrip()
    if sentence:
        yield sentence


def split_sentences(text: str) -> list[str]:
    """Split report text into sentences.

    Handles soft-wrapped lines, blank-line paragraphs, numbered/bulleted lists, upper-case section
    headers ("IMPRESSION:"), abbreviations ("approx.", "e.g.", "vs.") and decimals ("3.2 cm").
    Headers and list markers are removed from the returned sentences.
    """
    sentences: list[str] = []
    for segment in _segments(text):
        start = 0
        for m in _BOUNDARY_RE.finditer(segment):
            before = segment[start : m.start() + 1]
            word_m = _PREV_WORD_RE.search(before.rstrip(".!?"))
            word = word_m.group(1).lower().rstrip(".") if word_m else ""
            if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
                continue
            # "1. Finding" at the start of a sentence is a list marker, not a sentence of its own
            if word.isdigit() and len(word) <= 2 and not segment[start : m.start()].strip(" 0123456789"):
                continue
            sentences.append(segment[start : m.end()])
            start = m.end()
        sentences.append(segment[start:])
    out: list[str] = []
    for s in sentences:
        cleaned = _strip_markers(s)
        if any(ch.isalnum() for ch in cleaned):
            out.extend(_chunk(cleaned))
    return out


# ---------------------------------------------------------------------------------------------------
# Mentions
# ---------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Mention:
    concept: Concept
    start: int
    end: int
    loc: tuple[int, int] | None = None  # the location words, for laterality
    loc_plural: bool = False
    paired: bool = False  # a paired organ: laterality is reported
    detail: str | None = None
    forced: Assertion | None = None
    extra: list[Concept] = field(default_factory=list)


_Resolver = Callable[[str, str, str, str], tuple[Concept, str | None] | None]


@dataclass(frozen=True, slots=True)
class _Family:
    """An organ family: abnormality words that count only near one of its location words."""

    loc: re.Pattern[str]
    abn: re.Pattern[str]
    resolve: _Resolver  # (loc kind, abn kind, loc text, context around the pair) -> concept
    paired: bool = False
    by_text: bool = False  # LOC words name different concepts ("parotid" vs "lacrimal")
    window: int = 8  # max tokens between the ABN and the LOC
    blocker: re.Pattern[str] | None = None  # other organs: no pairing across them
    needs: re.Pattern[str] | None = None  # sentence must contain this for the family to apply
    loc_hints: _Hints = ()  # hints of ``loc`` and ``abn`` (see ``_may_match``); both must hit
    abn_hints: _Hints = ()


def _kind(m: re.Match[str]) -> str:
    return m.lastgroup or ""


_BOUNDARY_IN_GAP = _c(r"[;:!?]|\.(?!\d)|\b(?:but|however|although|whereas|while)\b")

# --- pancreas -------------------------------------------------------------------------------------
_PANC_LOC = _c(
    r"(?P<seg>pancrea(?:s|tic)\s+(?:head|body|tail|neck|uncinate(?:\s+process)?)"
    r"|(?:head|body|tail|neck)\s+of\s+the\s+pancreas|uncinate\s+process)"
    r"|(?P<gland>\bpancrea(?:s|tic)\b)"
)
_PANC_ABN = _c(
    r"\b(?:(?P<mass>mass(?:es)?|lesions?|tumou?rs?|nodules?)"
    r"|(?P<enl>enlarge(?:d|ment)|enlarging|swollen|swelling|bulky|sausage[- ](?:shaped|like)"
    r"|soft[- ]tissue\s+thickening))\b"
)
_DIFFUSE_RE = _c(r"\bdiffuse(?:ly)?\b")
_FOCAL_RE = _c(r"\b(?:focal(?:ly)?|segmental)\b")


def _resolve_pancreas(loc_kind: str, abn_kind: str, _loc: str, ctx: str) -> tuple[Concept, str | None]:
    if abn_kind == "mass":
        return Concept.PANCREAS_FOCAL_MASS, None
    if _DIFFUSE_RE.search(ctx):
        return Concept.PANCREAS_DIFFUSE_ENLARGEMENT, None
    if _FOCAL_RE.search(ctx) or loc_kind == "seg":
        return Concept.PANCREAS_FOCAL_MASS, None
    return Concept.PANCREAS_DIFFUSE_ENLARGEMENT, None


# --- biliary --------------------------------------------------------------------------------------
_CBD = r"(?:common\s+bile\s+duct|CBD|bile\s+duct)"
_BIL_LOC = _c(
    _at_word(
        rf"(?P<dist>\b(?:distal|intra-?pancreatic|lower|terminal|pancreatic\s+portion\s+of\s+the)\s+{_CBD}"
        r"|\bintra-?pancreatic\s+(?:portion|segment|part)|\bampulla(?:ry)?\b)"
        r"|(?P<prox>\bintrahepatic\b|\bIHDs?\b|\bcommon\s+hepatic\s+ducts?\b|\bCHD\b"
        r"|\b(?:right|left)(?:\s+and\s+(?:right|left))?\s+hepatic\s+ducts?\b|\bhepatic\s+ducts?\b"
        r"|\b(?:peri)?hilar\s+(?:bile\s+ducts?|biliary|ducts?)\b|\b(?:hepatic|liver|biliary)\s+hilum\b"
        r"|\b(?:biliary\s+)?confluence\b|\bporta\s+hepatis\b"
        rf"|\b(?:proximal|mid|middle|upper|suprapancreatic)(?:[- ]to[- ](?:mid|middle))?\s+{_CBD}"
        r"|\bextrahepatic\s+(?:bile\s+|biliary\s+)?(?:ducts?|biliary|tree)?)"
        rf"|(?P<unq>\b{_CBD}s?\b|\bbiliary\b)"
        r"|(?P<weak>\b(?:peri)?hil(?:ar|um)\b)"
    )
)
_BIL_ABN = _c(
    r"\b(?:(?P<strict>strictur(?:e|es|ed|ing)|stenos[ie]s|stenotic|narrow(?:ing|ed)|cut-?off)"
    r"|(?P<thick>(?:wall|mural)\s+thickening|thicken(?:ing|ed)|beaded|beading)"
    r"|(?P<mass>mass|encas(?:ing|ement|es)))\b"
)
_BIL_BLOCK = _c(r"\bpancrea(?:s|tic)\b|\bkidneys?\b|\brenal\b|\baort\w*|\bgland|\bspleen\b|\blungs?\b")


def _resolve_biliary(loc_kind: str, abn_kind: str, _ctx: str, _s: str) -> tuple[Concept, str | None] | None:
    if loc_kind == "weak" and abn_kind != "strict":
        return None  # "hilar" alone is lung hilum unless it qualifies a stricture
    if loc_kind == "dist":
        return Concept.BILIARY_DISTAL, None
    return Concept.BILIARY_PROXIMAL, ("level-unstated" if loc_kind == "unq" else None)


# --- glands ---------------------------------------------------------------------------------------
_GLAND_LOC = _c(r"\b(?P<g>lacrimal|parotid|submandibular|sublingual)\b")
_GLAND_ABN = _c(
    r"\b(?P<a>enlarg\w*|swollen|swelling|prominen\w*|hypertroph\w*|FDG|uptake|avid\w*|hypermetabolic"
    r"|inflam\w*|infiltrat\w*|sialadenitis)\b"
)
_GLAND_PLURAL = _c(r"^(?:\s*(?:,|and|or|&)\s*(?:lacrimal|parotid|submandibular|sublingual))*\s+glands\b")
_GLAND_CONCEPT = {
    "lacrimal": Concept.LACRIMAL_GLAND,
    "parotid": Concept.PAROTID_GLAND,
    "submandibular": Concept.SUBMANDIBULAR_GLAND,
    "sublingual": Concept.SUBLINGUAL_GLAND,
}


# Letters that case-insensitive regex matching folds to ASCII but str.lower() does not ("parotıd").
_REGEX_FOLDS = str.maketrans({"İ": "i", "ı": "i", "ſ": "s", "\u212a": "k"})


def _resolve_gland(_k: str, _a: str, loc_text: str, _s: str) -> tuple[Concept, str | None]:
    return _GLAND_CONCEPT[loc_text.translate(_REGEX_FOLDS).lower()], None


# --- kidney ---------------------------------------------------------------------------------------
_KID_LOC = _c(
    _at_word(
        r"(?P<pelvis>\brenal\s+pelv(?:is|es|ic)\b|\bpelvi-?ca(?:l|ly)[iy]?ceal\b|\bcollecting\s+systems?\b)"
        r"|(?P<cortex>\brenal(?:\s+(?:cortex|cortical|parenchyma\w*))?\b|\bkidneys?\b|\bcort(?:ex|ical)\b"
        r"|\bparenchyma\w*)"
    )
)
_KID_ABN = _c(
    _at_word(
        r"(?P<low>\blow[- ](?:attenuation|density|signal)\b|\bhypo-?(?:attenuat\w*|dens\w*|enhanc\w*|intens\w*)"
        r"|\b(?:decreased|reduced|diminished)\s+enhancement\b)"
        r"|(?P<thick>\bthicken\w*|\bsoft[- ]tissue\b)"
    )
)
_KIDNEY_CONTEXT = _c(r"\bkidneys?\b|\brenal\b|\bnephr")


def _resolve_kidney(loc_kind: str, abn_kind: str, _ctx: str, _s: str) -> tuple[Concept, str | None] | None:
    if loc_kind == "pelvis":
        return (Concept.RENAL_PELVIS_THICKENING, None) if abn_kind == "thick" else None
    return (Concept.RENAL_CORTEX_LOW_DENSITY, None) if abn_kind == "low" else None


# --- aorta ----------------------------------------------------------------------------------------
_AORTA_MOD = r"(?:thoracic|ascending|descending|abdominal|infrarenal|juxtarenal|suprarenal|pararenal)"
_AORTA_LOC = _c(
    _at_word(
        rf"(?P<a>\b(?:{_AORTA_MOD}\s+(?:(?:or|and|,)\s+)?)+aort\w*|\baortic\s+(?:arch|root|bifurcation)\b"
        r"|\barch\s+of\s+the\s+aorta\b|\b(?:common\s+|external\s+|internal\s+)?iliac\s+arter\w*"
        r"|\baorto-?iliac\b|\bthoracic(?=\s+(?:peri)?aortitis)|\baort(?:a|ic)\b)"
    )
)
_AORTA_ABN = _c(
    _at_word(
        r"(?P<wall>\b(?:wall|mural)\s+thickening\b|\bthickened\s+wall\b|\bthickening\s+of\s+the\s+(?:aortic\s+)?wall\b"
        r"|\baortitis\b)"
        r"|(?P<peri>\bperi-?aort(?:ic|itis)\b(?:\s+soft[- ]tissue)?|\bretroperitoneal\s+fibrosis\b"
        r"|\bsoft[- ]tissue\s+(?:cuff|mantle|rind|sheath|surrounding|around|encasing)\b"
        r"|\b(?:periarterial|circumferential|anterolateral)\s+soft[- ]tissue\b|\bencas\w+)"
    )
)
_SELF_LOCATED_PERI = _c(r"peri-?aort|retroperitoneal\s+fibrosis")
_THORACIC_WORDS = _c(r"\b(?:thoracic|ascending|descending|arch|root)\b")
_ABDOMINAL_WORDS = _c(
    r"\b(?:abdominal|infrarenal|juxtarenal|suprarenal|pararenal|bifurcation|iliac|aorto-?iliac)\b"
)

# --- chest ----------------------------------------------------------------------------------------
_CHEST_LOC = _c(
    _at_word(r"(?P<pbv>\b(?:peri)?bronchovascular\b|\binterlobular\b|\bseptal\b)|(?P<pvb>\bparavertebral\b)")
)
_CHEST_ABN = _c(_at_word(r"(?P<thick>\bthicken\w*)|(?P<st>\bsoft[- ]tissue\b|\bband(?:-like)?\b)"))


def _resolve_chest(loc_kind: str, abn_kind: str, _ctx: str, _s: str) -> tuple[Concept, str | None] | None:
    if loc_kind == "pvb":
        return Concept.PARAVERTEBRAL_BAND, None
    return (Concept.PERIBRONCHOVASCULAR_THICKENING, None) if abn_kind == "thick" else None


_FAMILIES: tuple[_Family, ...] = (
    _Family(
        _PANC_LOC, _PANC_ABN, _resolve_pancreas, window=6, blocker=_c(r"\bkidneys?\b|\bbile\b|\bCBD\b"),
        loc_hints=("pancrea", "uncinate"),
        abn_hints=("mass", "lesion", "tumo", "nodule", "enlarg", "swollen", "swelling", "bulky", "sausage", "soft"),
    ),
    _Family(
        _BIL_LOC, _BIL_ABN, _resolve_biliary, window=8, blocker=_BIL_BLOCK,
        loc_hints=("bile", "cbd", "pancreatic", "ampulla", "hepatic", "ihd", "chd", "hilar", "hilum",
                   "confluence", "porta", "biliary"),
        abn_hints=("strictur", "steno", "narrow", "cut", "thicken", "bead", "mass", "encas"),
    ),
    _Family(
        _GLAND_LOC, _GLAND_ABN, _resolve_gland, paired=True, by_text=True, window=8,
        loc_hints=("lacrimal", "parotid", "submandibular", "sublingual"),
        abn_hints=("enlarg", "swollen", "swelling", "prominen", "hypertroph", "fdg", "uptake", "avid",
                   "hypermetabolic", "inflam", "infiltrat", "sialadenitis"),
    ),
    _Family(
        _KID_LOC, _KID_ABN, _resolve_kidney, paired=True, window=8, needs=_KIDNEY_CONTEXT,
        loc_hints=("renal", "pelvi", "collecting", "kidney", "cort", "parenchyma"),
        abn_hints=("low", "hypo", "enhancement", "thicken", "soft"),
    ),
    _Family(
        _CHEST_LOC, _CHEST_ABN, _resolve_chest, window=4,
        loc_hints=("bronchovascular", "interlobular", "septal", "paravertebral"),
        abn_hints=("thicken", "soft", "band"),
    ),
)  # fmt: skip
_AORTA_ABN_HINTS: Final[_Hints] = ("thicken", "aort", "retroperitoneal", "soft", "encas")

# --- standalone terms -----------------------------------------------------------------------------
_Standalone = tuple[re.Pattern[str], Concept, str | None, _Hints]
_STANDALONE: tuple[_Standalone, ...] = (
    (_c(r"\bsausage[- ](?:shaped|like)\s+pancreas\b|\bloss\s+of\s+(?:the\s+)?(?:normal\s+)?(?:pancreatic\s+)?"
        r"lobulation\b|\bfeatureless\s+pancrea\w*"), Concept.PANCREAS_DIFFUSE_ENLARGEMENT, None, ("sausage", "lobulation", "featureless")),
    (_c(r"\bcapsule[- ]like\s+rim\b|\bcapsule\s+sign\b"), Concept.PANCREAS_CAPSULE_RIM, None, ("capsule",)),
    (_c(r"\bperiductal\s+(?:soft[- ]tissue\s+)?(?:thickening|infiltration|enhancement)\b"),
     Concept.BILIARY_PROXIMAL, "level-unstated", ("periductal",)),
    (_c(r"\bdacryoadenitis\b"), Concept.LACRIMAL_GLAND, None, ("dacryoadenitis",)),
    (_c(r"\bsplenomegaly\b|\b(?:enlarged|enlargement\s+of\s+the)\s+spleen\b"
        r"|\bspleen\s+(?:is\s+|appears\s+)?(?:not\s+)?(?:mildly\s+|moderately\s+|markedly\s+)?enlarged\b"),
     Concept.SPLENOMEGALY, None, ("splenomegaly", "spleen")),
    (_c(r"\brapid(?:ly)?\s+(?:interval\s+)?(?:progress\w*|enlarg\w*|growth|growing|increas\w*)"),
     Concept.RAPID_PROGRESSION, None, ("rapid",)),
    (_c(r"\berdheim[- ]chester\b"), Concept.ERDHEIM_CHESTER, None, ("erdheim",)),
    (_c(r"\batypi(?:a|cal)\b"), Concept.ATYPIA, None, ("atypi",)),
    (_c(r"\blympho-?plasma(?:cytic|cellular)\b|\bdense\s+lymphocytic\s+infiltrat\w*"
        r"|\bplasma[- ]cell[- ]rich\s+infiltrat\w*|\blymphocytes\s+and\s+plasma\s+cells\b"),
     Concept.LYMPHOPLASMACYTIC_INFILTRATE, None, ("lympho", "plasma")),
    (_c(r"\bstoriform\b|\bcartwheel\b"), Concept.STORIFORM_FIBROSIS, None, ("storiform", "cartwheel")),
    (_c(r"\bobliterative\s+(?:phlebitis|venulitis)\b|\bobliterated\s+veins?\b|\bphlebitis\b"),
     Concept.OBLITERATIVE_PHLEBITIS, None, ("obliterat", "phlebitis")),
    (_c(r"\bIgG4\s*(?:[-+]\s*)?(?:positive|pos\b|\+)|\bIgG4\s*\+?\s*[/:]\s*IgG|\bIgG4\s+(?:immuno\w*|stain\w*|IHC)"
        r"|\bIgG4[- ]bearing\b"), Concept.IGG4_IMMUNOSTAIN, None, ("igg4",)),
    (_c(r"\bgranulom\w*"), Concept.PATHOLOGY_OTHER, "granulomatous", ("granulom",)),
    (_c(r"\bneutrophilic\s+(?:inflammation|infiltrat\w*)|\b(?:prominent|abundant|numerous)\s+neutrophils\b"
        r"|\bmicroabscess\w*"), Concept.PATHOLOGY_OTHER, "neutrophilic", ("neutrophil", "microabscess")),
    (_c(r"\b(?:necrotizing\s+)?vasculitis\b"), Concept.PATHOLOGY_OTHER, "necrotizing-vasculitis", ("vasculitis",)),
    (_c(r"\bnecrosis\b|\bnecrotic\b"), Concept.PATHOLOGY_OTHER, "necrosis", ("necro",)),
    (_c(r"\bALK\b|\bROS-?1\b|\binflammatory\s+myofibroblastic\b"), Concept.PATHOLOGY_OTHER, "imt", ("alk", "ros", "myofibroblastic")),
    (_c(r"\bhistiocytosis\b|\bCD1a\b|\bhistiocytic\s+(?:disorder|neoplasm|proliferation|sarcoma)\b"),
     Concept.PATHOLOGY_OTHER, "histiocytic", ("histiocyt", "cd1a")),
    (_c(r"\b(?:adeno)?carcinomas?\b|\bmalignan(?:cy|cies)\b|\bmalignant\s+(?:cells?|neoplasm|tumou?r|process"
        r"|lesion|epithelial)\b|\bcancers?\b"), Concept.CARCINOMA, None, ("carcinoma", "malignan", "cancer")),
)  # fmt: skip

_CCA_RE = _c(
    _at_word(
        r"\bcholangiocarcinomas?\b|\bklatskin(?:'s)?(?:\s+tumou?r)?"
        r"|\b(?P<hedge>malignant[- ]appearing|malignant)\s+(?:\w+\s+){0,3}?strictur\w*"
        r"|\b(?:bile\s+duct|biliary|hilar|perihilar)\s+(?:adeno)?(?:carcinoma|cancer|malignancy)"
        r"|\b(?:adeno)?carcinoma\s+(?:of|in|involving|arising\s+(?:in|from))\s+the\s+(?:\w+\s+){0,3}?"
        r"(?:bile\s+duct|biliary|hepatic\s+duct|CBD|CHD|hilum)"
    )
)
_RIM_RE = _c(
    _at_word(
        r"\bperi-?pancreatic\s+halo\b|\bhalo\b|\b(?:hypo\w+|low[- ](?:density|attenuation)|peripheral)\s+rim\b"
        r"|\brim\s+of\s+(?:decreased|delayed|low|reduced)\s+(?:enhancement|attenuation)\b"
    )
)
_PANCREAS_WORD = _c(r"pancrea")
_CCA_HINTS: Final[_Hints] = ("carcinoma", "klatskin", "malignan", "cancer")
_RIM_HINTS: Final[_Hints] = ("halo", "rim")

# --- laterality -----------------------------------------------------------------------------------
_LAT_RE = _c(
    r"(?P<b>\bbilateral(?:ly)?\b|\bboth\b|\bsymmetric(?:al(?:ly)?)?\b|\b(?:left|right)\s+(?:and|&|\+)\s+(?:left|right)\b"
    r"|\b(?:right|left)\s+(?:greater|larger|more)\s+than\s+(?:left|right)\b)"
    r"|(?P<l>\bleft\b)|(?P<r>\bright\b)"
)
_LAT_BARRIER = _c(r"[;.]|\b(?:but|however|whereas|while)\b")
_LAT_MAX_CHARS = 40


def _gap_ok(sentence: str, a: int, b: int, window: int, blocker: re.Pattern[str] | None) -> bool:
    gap = sentence[a:b]
    if len(gap) > window * 14 or len(gap.split()) > window or _BOUNDARY_IN_GAP.search(gap):
        return False
    return not (blocker and blocker.search(gap))


def _adjacent(sentence: str, abn: re.Match[str], loc: re.Match[str]) -> bool:
    lo, hi = (loc.end(), abn.start()) if loc.start() < abn.start() else (abn.end(), loc.start())
    return hi <= lo or len(sentence[lo:hi].split()) <= 1


def _family_mentions(sentence: str, fam: _Family, low: str | None) -> list[_Mention]:
    if not (_may_match(low, fam.loc_hints) and _may_match(low, fam.abn_hints)):
        return []  # no LOC or no ABN word: nothing to pair
    if fam.needs is not None and not fam.needs.search(sentence):
        return []
    locs = list(fam.loc.finditer(sentence))
    abns = list(fam.abn.finditer(sentence))
    if not locs or not abns:
        return []
    abn_starts = [m.start() for m in abns]
    loc_starts = [m.start() for m in locs]
    out: list[_Mention] = []
    for ai, abn in enumerate(abns):
        idx = bisect.bisect_left(loc_starts, abn.start())
        # nearest LOC of each kind/text on each side
        chosen: dict[tuple[str, str, int], re.Match[str]] = {}
        for side, rng in ((-1, range(idx - 1, -1, -1)), (1, range(idx, len(locs)))):
            for li in rng:
                loc = locs[li]
                if side < 0 and loc.end() > abn.start():
                    lo, hi = abn.start(), abn.start()  # overlapping
                else:
                    lo, hi = (loc.end(), abn.start()) if side < 0 else (abn.end(), loc.start())
                if hi - lo > fam.window * 14:
                    break
                if hi > lo and not _gap_ok(sentence, lo, hi, fam.window, fam.blocker):
                    break
                # another ABN of the family between them: that one owns this LOC
                between = bisect.bisect_right(abn_starts, lo) < bisect.bisect_left(abn_starts, hi)
                if between and not (0 <= ai < len(abns) and abn.start() >= lo):
                    break
                key = (_kind(loc), loc.group(0).lower() if fam.by_text else "", side)
                chosen.setdefault(key, loc)
        # a LOC right next to the ABN ("hilar stricture") owns it: do not reach across to the other side
        adjacent = {k[2] for k, loc in chosen.items() if _adjacent(sentence, abn, loc)}
        if len(adjacent) == 1:
            chosen = {k: v for k, v in chosen.items() if k[2] in adjacent}
        for loc in chosen.values():
            start, end = min(abn.start(), loc.start()), max(abn.end(), loc.end())
            ctx = sentence[max(0, start - 25) : end]
            resolved = fam.resolve(_kind(loc), _kind(abn), loc.group(0), ctx)
            if resolved is None:
                continue
            concept, detail = resolved
            plural = bool(
                fam.paired
                and (
                    _GLAND_PLURAL.match(sentence[loc.end() :]) or loc.group(0).lower().endswith(("kidneys",))
                )
            )
            if fam.paired and not plural and loc.group(0).lower() in ("renal", "cortex", "cortical"):
                plural = bool(
                    re.match(
                        r"\s+(?:\w+\s+){0,2}?(?:of|in)\s+(?:the\s+)?kidneys\b", sentence[loc.end() :], _I
                    )
                )
            out.append(_Mention(concept, start, end, (loc.start(), loc.end()), plural, fam.paired, detail))
    return out


def _aorta_mentions(sentence: str, low: str | None) -> list[_Mention]:
    if not _may_match(low, _AORTA_ABN_HINTS):
        return []
    abns = list(_AORTA_ABN.finditer(sentence))
    if not abns:
        return []
    locs = list(_AORTA_LOC.finditer(sentence))
    out: list[_Mention] = []
    for abn in abns:
        thoracic = abdominal = any_loc = False
        start, end = abn.start(), abn.end()
        for loc in locs:
            lo, hi = (loc.end(), abn.start()) if loc.start() < abn.start() else (abn.end(), loc.start())
            if hi > lo and not _gap_ok(sentence, lo, hi, 8, None):
                continue
            any_loc = True
            text = loc.group(0)
            thoracic |= bool(_THORACIC_WORDS.search(text))
            abdominal |= bool(_ABDOMINAL_WORDS.search(text))
            start, end = min(start, loc.start()), max(end, loc.end())
        kind = _kind(abn)
        if kind == "wall" and not any_loc and "aort" not in abn.group(0).lower():
            continue  # wall thickening of something that is not the aorta
        if kind == "peri" and not any_loc and not _SELF_LOCATED_PERI.match(abn.group(0)):
            continue  # soft tissue around or encasing another vessel (hepatic artery, portal vein, duct)
        if thoracic:
            out.append(_Mention(Concept.THORACIC_AORTA, start, end))
        if abdominal or not thoracic:
            concept = (
                Concept.ABDOMINAL_AORTIC_WALL_THICKENING if kind == "wall" else Concept.PERIAORTIC_SOFT_TISSUE
            )
            out.append(_Mention(concept, start, end))
    return out


def _mentions(sentence: str) -> list[_Mention]:
    low = _hint_text(sentence)
    out: list[_Mention] = []
    for fam in _FAMILIES:
        out.extend(_family_mentions(sentence, fam, low))
    out.extend(_aorta_mentions(sentence, low))
    for pattern, concept, detail, hints in _STANDALONE:
        if _may_match(low, hints):
            out.extend(
                _Mention(concept, m.start(), m.end(), detail=detail) for m in pattern.finditer(sentence)
            )
    for m in _CCA_RE.finditer(sentence) if _may_match(low, _CCA_HINTS) else ():
        hedged = Assertion.UNCERTAIN if (m.group("hedge") or "").lower().endswith("appearing") else None
        out.append(
            _Mention(Concept.CHOLANGIOCARCINOMA, m.start(), m.end(), forced=hedged, extra=[Concept.CARCINOMA])
        )
    if _may_match(low, _RIM_HINTS) and _PANCREAS_WORD.search(sentence):
        out.extend(
            _Mention(Concept.PANCREAS_CAPSULE_RIM, m.start(), m.end()) for m in _RIM_RE.finditer(sentence)
        )
    return out


# ---------------------------------------------------------------------------------------------------
# Assertion (ConText-style)
# ---------------------------------------------------------------------------------------------------

_NEG, _UNC, _HYP, _HIST, _PSEUDO, _PRESENT = "neg", "unc", "hyp", "hist", "pseudo", "present"
_PRE, _POST, _BOTH = "pre", "post", "both"
_EXAMS = r"(?:CT|MRI|MR|MRCP|ERCP|EUS|PET(?:/CT)?|US|ultrasound|study|studies|exam\w*|imaging|scans?|biops(?:y|ies))"
_SEEN = (
    r"(?:seen|identified|visualized|visualised|present|evident|demonstrated|appreciated|detected|found|noted)"
)

# (pattern, type, direction, token window, hints)
_CUE_SPECS: tuple[tuple[str, str, str, int, _Hints], ...] = (
    # pseudo-cues: mask shorter cues they overlap
    (r"\bno\s+(?:significant\s+|definite\s+|appreciable\s+)?(?:interval\s+)?(?:change|increase|progression)\b",
     _PSEUDO, _PRE, 0,
     ("change", "increase", "progression")),
    (_at_word(r"\bwithout\s+(?:significant\s+|interval\s+)*change\b|\bnot\s+only\b|\bno\s+further\b"), _PSEUDO, _PRE, 0,
     ("change", "only", "further")),
    (_at_word(r"\bnot\s+significantly\s+changed\b|\bgram[- ]negative\b|\bnot\s+necessarily\b"), _PSEUDO, _PRE, 0,
     ("significantly", "gram", "necessarily")),
    (rf"\b(?:compared|comparison)\s+(?:with|to)\s+(?:the\s+)?(?:prior|previous|earlier)(?:\s+{_EXAMS})?", _PSEUDO, _PRE, 0,
     ("compar",)),
    (_at_word(rf"\b(?:prior|previous|earlier)\s+(?:\w+\s+)?{_EXAMS}\b|\bsince\s+(?:the\s+)?(?:prior|previous)\b"), _PSEUDO, _PRE, 0,
     ("prior", "previous", "earlier")),
    # negation
    (_at_word(r"\bno\b|\bnot\b|\bwithout\b|\bnegative\s+for\b|\babsen(?:t|ce\s+of)\b|\bfree\s+of\b|\bnor\b|\bneither\b"
     r"|\bno\s+evidence\s+of\b|\bno\s+longer\b|\bresolution\s+of\b|\bfails?\s+to\s+(?:show|reveal|demonstrate)\b"
     r"|\bruled\s+out\b|\bdenie[sd]\b"), _NEG, _PRE, 10,
     ("no", "without", "negative", "absen", "free", "neither", "resolution", "fail", "ruled", "denie")),
    (r"\b0\s*(?:of|/)\s*\d+\s+(?:\w+\s+){0,2}?(?:positive|involved)(?:\s+for)?\b", _NEG, _PRE, 4,
     ("positive", "involved")),
    (r"\bfavou?r(?:s|ed|ing)?\s+[^.;]{0,40}?\bover\b", _NEG, _PRE, 4,
     ("favo",)),
    (rf"\b(?:is|are|was|were|has\s+been|have\s+been)\s+(?:not\s+{_SEEN}|absent|excluded|ruled\s+out|negative"
     r"|(?:most\s+|very\s+)?unlikely)\b", _NEG, _POST, 8,
     ("not", "absent", "excluded", "ruled", "negative", "unlikely")),
    (_at_word(rf"\bnot\s+{_SEEN}\b|\b(?:has|have)\s+(?:since\s+)?(?:completely\s+)?resolved\b|\bno\s+longer\s+{_SEEN}\b"
     r"|\bunlikely\b"), _NEG, _POST, 8,
     ("no", "resolved", "unlikely")),
    (r"\bresolved\b", _NEG, _BOTH, 6,
     ("resolved",)),
    # pathologists' hedges against a diagnosis ("carcinoma is not favoured", "findings argue against CCA")
    (_at_word(r"\b(?:is|are|was|were)\s+(?:\w+\s+)?not\s+favou?red\b|\b(?:is|are|was|were)\s+disfavou?red\b"),
     _NEG, _POST, 8,
     ("favo",)),
    (_at_word(r"\bnot\s+favou?red\b"), _NEG, _PRE, 8,
     ("favo",)),
    (_at_word(r"\bargu(?:e|es|ing)\s+against\b|\bevidence\s+against\b"), _NEG, _PRE, 10,
     ("against",)),
    # hypothetical
    (_at_word(r"\brule\s+out\b|\br/o\b|\bto\s+(?:exclude|assess|evaluate)(?:\s+for)?\b|\bevaluat(?:e|ion)\s+(?:for|of)\b"
     r"|\bassess(?:ment)?\s+(?:for|of)\b|\bif\b|\bin\s+case\s+of\b|\bshould\s+(?:there\s+be|it)\b"
     r"|\bscreen(?:ing)?\s+for\b|\bwork-?up\s+(?:for|of)\b|\bin\s+the\s+event\b"), _HYP, _PRE, 10,
     ("rule", "r/o", "exclude", "assess", "evaluat", "if", "case", "should", "screen", "work", "event")),
    # uncertainty
    (_at_word(r"\bpossibl[ey]\b|\bprobabl[ey]\b|\bquestionabl[ey]\b|\bquestion\s+of\b|\bequivocal\b"
     r"|\bsuspicious\s+(?:for|of)\b|\bsuspect(?:ed)?\b|\bconcerning\s+for\b|\bconcern\s+for\b"
     r"|\bworrisome\s+for\b|\bcan\s*not\s+(?:entirely\s+|completely\s+|definitely\s+|fully\s+)?(?:exclude|rule\s+out)\b"
     r"|\b(?:may|might|could)\s+(?:represent|reflect|be|indicate|correspond\s+to)\b|\b(?:most\s+)?likely\b"
     r"|\bpresum(?:ed|ably|ptive)\b|\bsuggestive\s+of\b|\bsuggest(?:s|ing)?\b|\bfavou?r(?:s|ed|ing)?\b"
     r"|\bdifferential\s+(?:diagnosis\s+)?(?:includes?|considerations?\s+include|of)\b|\bindeterminate\b"
     r"|\braises?\s+(?:the\s+)?(?:possibility|concern)\b") + r"|\?", _UNC, _PRE, 10,
     ("possibl", "probabl", "question", "equivocal", "suspic", "suspect", "concern", "worrisome", "exclude", "rule",
      "may", "might", "could", "likely", "presum", "suggest", "favo", "differential", "indeterminate", "raise", "?")),
    (_at_word(r"\bcan\s*not\s+be\s+(?:entirely\s+|completely\s+|definitely\s+|fully\s+)?(?:excluded|ruled\s+out)\b"
     r"|\b(?:is|are)\s+not\s+excluded\b"
     r"|\b(?:is|are|was)\s+(?:suspected|possible|probable|favou?red|questioned|(?:most\s+)?likely)\b"), _UNC, _POST, 8,
     ("excluded", "ruled", "suspected", "possible", "probable", "favo", "questioned", "likely")),
    # "X, less likely Y": Y is hedged, X is not; "Y is (considered) less likely": Y is hedged
    (_at_word(r"\bless\s+likely\b"), _UNC, _PRE, 6,
     ("likely",)),
    (_at_word(r"\b(?:is|are|was|were)\s+(?:\w+\s+)?less\s+likely\b"), _UNC, _POST, 8,
     ("likely",)),
    (_at_word(r"\bversus\b|\bvs\.?(?=\s)"), _UNC, _BOTH, 4,
     ("versus", "vs")),
    # historical
    (_at_word(r"\bhistory\s+of\b|\bh/o\b|\bhx\s+of\b|\bstatus\s+post\b|\bs/p\b|\bprevious(?:ly)?\b|\bprior\b"
     r"|\bformerly\b|\bpast\b|\bremote\b"), _HIST, _PRE, 10,
     ("history", "h/o", "hx", "status", "s/p", "previous", "prior", "formerly", "past", "remote")),
    (rf"\b(?:prior|previous|earlier)\s+(?:\w+\s+)?{_EXAMS}(?:\s+\S+){{0,3}}?\s+"
     r"(?:showed|shows|demonstrated|revealed|noted|described|disclosed)\b", _HIST, _PRE, 10,
     ("prior", "previous", "earlier")),
    (_at_word(r"\b(?:in|since)\s+(?:19|20)\d\d\b|\b\d+\s+years?\s+ago\b|\bpreviously\b"), _HIST, _BOTH, 8,
     ("19", "20", "ago", "previously")),
    # present-state: overrides historical within the clause
    (_at_word(r"\bunchanged\b|\bpersist\w*|\bagain\s+(?:seen|noted|demonstrated|identified)\b|\bredemonstrat\w*"
     r"|\bstable\b|\bresidual\b|\bremains?\b|\bstill\b"), _PRESENT, _BOTH, 20,
     ("unchanged", "persist", "again", "redemonstrat", "stable", "residual", "remain", "still")),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _CueSpec:
    pattern: re.Pattern[str]
    kind: str
    direction: str
    window: int
    hints: _Hints


@dataclass(frozen=True, slots=True)
class _Cue:
    start: int
    end: int
    kind: str
    direction: str
    window: int


_CUES = tuple(_CueSpec(_c(p), k, d, w, h) for p, k, d, w, h in _CUE_SPECS)
_TERMINATOR_ALL = _c(
    r"[;:]|\b(?:but|however|although|though|whereas|while|except|yet|nonetheless|which|who)\b"
    r"|\b(?:apart|aside)\s+from\b|\bother\s+than\b|,\s*and\s+(?:there|the|it)\b|\band\s+there\s+(?:is|are)\b"
)
_TERMINATOR_NEG = _c(r"\bwith\b|\bconsistent\s+with\b|\bcompatible\s+with\b|\bin\s+keeping\s+with\b")
_PRECEDENCE = ((_NEG, Assertion.NEGATED), (_HYP, Assertion.HYPOTHETICAL), (_UNC, Assertion.UNCERTAIN))


def _find_cues(sentence: str) -> list[_Cue]:
    low = _hint_text(sentence)
    found = [
        _Cue(m.start(), m.end(), spec.kind, spec.direction, spec.window)
        for spec in _CUES
        if _may_match(low, spec.hints)
        for m in spec.pattern.finditer(sentence)
        if m.end() > m.start()
    ]
    # longest cue wins where cues overlap ("cannot be excluded" over "excluded", "no change" over "no")
    found.sort(key=lambda c: (-(c.end - c.start), c.start))
    kept: list[_Cue] = []
    for cue in found:
        if all(cue.end <= k.start or cue.start >= k.end for k in kept):
            kept.append(cue)
    return [c for c in kept if c.kind != _PSEUDO]


def _in_scope(sentence: str, cue: _Cue, mention: _Mention, kind_terms: list[re.Pattern[str]]) -> bool:
    if cue.start >= mention.start and cue.end <= mention.end:
        # "pancreas is not enlarged", "pancreas, possibly enlarged": the cue sits inside the mention
        return cue.kind in (_NEG, _UNC)
    if cue.direction in (_PRE, _BOTH) and cue.end <= mention.start:
        gap = sentence[cue.end : mention.start]
    elif cue.direction in (_POST, _BOTH) and cue.start >= mention.end:
        gap = sentence[mention.end : cue.start]
    else:
        return False
    window = cue.window
    if cue.kind == _UNC and cue.direction == _BOTH and cue.start >= mention.end:
        window = 1  # "X versus Y": only the term right before "versus"
    if len(_TOKEN_RE.findall(gap)) > window:
        return False
    return not any(t.search(gap) for t in kind_terms)


def _assert(sentence: str, mention: _Mention, cues: list[_Cue]) -> Assertion:
    if mention.forced is not None:
        base_hits = {c.kind for c in cues if c.kind == _NEG and _in_scope(sentence, c, mention, _TERMS[_NEG])}
        return Assertion.NEGATED if base_hits else mention.forced
    hits = {c.kind for c in cues if _in_scope(sentence, c, mention, _TERMS.get(c.kind, _TERMS[_UNC]))}
    for kind, assertion in _PRECEDENCE:
        if kind in hits:
            return assertion
    if _HIST in hits and _PRESENT not in hits:
        return Assertion.HISTORICAL
    return Assertion.AFFIRMED


_TERMS: dict[str, list[re.Pattern[str]]] = {
    _NEG: [_TERMINATOR_ALL, _TERMINATOR_NEG],
    _UNC: [_TERMINATOR_ALL],
    _HYP: [_TERMINATOR_ALL],
    _HIST: [_TERMINATOR_ALL],
    _PRESENT: [_c(r"[;]|\b(?:but|however|whereas)\b")],
}

# ---------------------------------------------------------------------------------------------------
# Immunostain numbers
# ---------------------------------------------------------------------------------------------------

_CMP = r"(?P<cmp>>=?|≥|<=?|≤|up\s+to|fewer\s+than|less\s+than|more\s+than|greater\s+than|over|at\s+least|approximately|approx\.?|about|~)?"
_CELLS_RE = _c(
    rf"{_CMP}\s*(?P<n>\d+(?:\.\d+)?)(?:\s*(?:-|–|to)\s*(?P<n2>\d+(?:\.\d+)?))?\s*"
    r"(?:IgG4\s*(?:[-+]\s*)?(?:positive|pos|\+)?\s*)?(?:plasma\s+)?(?:cells?\s*)?"
    r"(?:/|per)\s*(?:\d+\s*)?(?:hpfs?|high[- ]power(?:\s+fields?)?)\b"
)
_RATIO_RE = _c(
    rf"\bratio\b[^.;%\d]{{0,25}}?{_CMP}\s*(?P<n>\d+(?:\.\d+)?)(?:\s*(?:-|–|to)\s*(?P<n2>\d+(?:\.\d+)?))?\s*(?P<pct>%)?"
)
_RATIO_BEFORE_RE = _c(rf"{_CMP}\s*(?P<n>\d+(?:\.\d+)?)\s*%\s*(?:of\s+)?(?:IgG4|ratio)")


def _bound(value: float, cmp: str | None) -> float:
    """Read a bound as the nearest integer value inside it: ">50" -> 51, "<10" -> 9, "≥41" -> 41."""
    cmp = " ".join((cmp or "").lower().split())
    if cmp in (">", "more than", "greater than", "over"):
        return value + 1
    if cmp in ("<", "fewer than", "less than"):
        return max(value - 1, 0.0)
    return value


def _stain_numbers(sentence: str) -> tuple[float | None, float | None]:
    """(ratio_percent, cells_per_hpf). A range reports its upper value; ">50" is read as 51."""
    cells: float | None = None
    ratio: float | None = None
    m = _CELLS_RE.search(sentence)
    if m:
        cells = _bound(float(m.group("n2") or m.group("n")), m.group("cmp"))
    r = _RATIO_RE.search(sentence)
    if r:
        raw = float(r.group("n2") or r.group("n"))
        if not r.group("pct") and raw <= 1:
            raw *= 100  # "ratio of 0.6"
        ratio = _bound(raw, r.group("cmp")) if raw <= 100 else None
    else:
        b = _RATIO_BEFORE_RE.search(sentence)
        if b:
            ratio = _bound(float(b.group("n")), b.group("cmp"))
    return ratio, cells


# ---------------------------------------------------------------------------------------------------
# Laterality
# ---------------------------------------------------------------------------------------------------


def _laterality(sentence: str, mention: _Mention) -> Laterality | None:
    if not mention.paired or mention.loc is None:
        return None
    lo, hi = mention.loc
    best: tuple[int, Laterality] | None = None
    for m in _LAT_RE.finditer(sentence):
        if m.end() <= lo:
            gap, dist = sentence[m.end() : lo], lo - m.end()
        elif m.start() >= hi:
            gap, dist = sentence[hi : m.start()], m.start() - hi
        else:
            gap, dist = "", 0
        if dist > _LAT_MAX_CHARS or _LAT_BARRIER.search(gap):
            continue
        side = {"b": Laterality.BILATERAL, "l": Laterality.LEFT, "r": Laterality.RIGHT}[_kind(m)]
        if best is None or dist < best[0]:
            best = (dist, side)
    if best is not None:
        return best[1]
    return Laterality.BILATERAL if mention.loc_plural else None


# ---------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------


def _sentence_findings(sentence: str) -> list[TextFinding]:
    mentions = _mentions(sentence)
    if not mentions:
        return []
    cues = _find_cues(sentence)
    ratio, cells = (None, None)
    if any(m.concept is Concept.IGG4_IMMUNOSTAIN for m in mentions):
        ratio, cells = _stain_numbers(sentence)
    seen: dict[tuple[Concept, Assertion, Laterality | None, str | None], TextFinding] = {}
    for mention in sorted(mentions, key=lambda m: m.start):
        assertion = _assert(sentence, mention, cues)
        lat = _laterality(sentence, mention)
        for concept in (mention.concept, *mention.extra):
            detail = mention.detail if concept is mention.concept else None
            key = (concept, assertion, lat, detail)
            if key in seen:
                continue
            is_stain = concept is Concept.IGG4_IMMUNOSTAIN
            seen[key] = TextFinding(
                concept=concept,
                assertion=assertion,
                phrase=sentence,
                laterality=lat,
                ratio_percent=ratio if is_stain else None,
                cells_per_hpf=cells if is_stain else None,
                detail=detail,
            )
    return list(seen.values())


def extract_findings(text: str) -> list[TextFinding]:
    """Read imaging or pathology narrative and return one ``TextFinding`` per concept mention.

    Each finding carries the concept, its assertion (affirmed, negated, uncertain, hypothetical,
    historical), the sentence it came from as ``phrase``, laterality for paired organs (glands,
    kidneys), IgG4 immunostain numbers and a ``detail`` label where relevant. Duplicate mentions of the
    same concept with the same assertion, side and detail in one sentence are reported once. Never
    raises on any ``str`` input; non-``str`` input returns an empty list.
    """
    if not isinstance(text, str) or not text.strip():
        return []
    findings: list[TextFinding] = []
    for sentence in split_sentences(text):
        findings.extend(_cached_sentence_findings(sentence))
    return findings


SENTENCE_CACHE_SIZE: Final = 8192


@lru_cache(maxsize=SENTENCE_CACHE_SIZE)
def _cached_sentence_findings(sentence: str) -> tuple[TextFinding, ...]:
    # Radiology and pathology reports are full of templated sentences ("The spleen is normal in size."),
    # and the same report comes back on every hook of a visit: reading a sentence once pays off. The cache
    # lives in process memory only, is bounded, and TextFinding is immutable, so sharing is safe.
    return tuple(_sentence_findings(sentence))


def clear_cache() -> None:
    """Forget every cached sentence (their text is record text held in process memory)."""
    _cached_sentence_findings.cache_clear()

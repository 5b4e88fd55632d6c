"""Tissue proof of carcinoma and the specimen site of pathology reports (CLINICAL_SPEC section 5, revised).

Only a pathology or cytology report (by its category or code, decided in :mod:`cds_service.core.reports`)
can prove carcinoma, and only when its diagnosis or conclusion affirms carcinoma, adenocarcinoma or
cholangiocarcinoma of a hepatobiliary or pancreatic specimen, or of a lymph node or metastasis that the
report attributes to a pancreatobiliary primary. The site comes from the sentence of the diagnosis first,
then from the report's specimen: its title/code text and its specimen lines ("SPECIMEN: bile duct
brushing", "A. Common bile duct, biopsy:").

The site lexicon below is data: one entry per site, the words that name it. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Final

from cds_service.core.findings import Concept, TextFinding
from cds_service.core.narrative.document import read_document


class Site(StrEnum):
    """A specimen or tumour site named in pathology text."""

    BILE_DUCT = "bile-duct"
    LIVER = "liver"
    GALLBLADDER = "gallbladder"
    AMPULLA = "ampulla"
    PANCREAS = "pancreas"
    LYMPH_NODE = "lymph-node"
    METASTASIS = "metastasis"
    # typical IgG4-RD organs beyond the pancreas and bile ducts (section 2, entry)
    SALIVARY_GLAND = "salivary-gland"
    LACRIMAL_GLAND = "lacrimal-gland"
    ORBIT = "orbit"
    KIDNEY = "kidney"
    LUNG = "lung"
    AORTA = "aorta"
    RETROPERITONEUM = "retroperitoneum"
    MENINGES = "meninges"
    THYROID = "thyroid"
    # other sites: a carcinoma here is not a pancreatobiliary carcinoma
    SKIN = "skin"
    COLORECTUM = "colorectum"
    STOMACH = "stomach"
    ESOPHAGUS = "esophagus"
    SMALL_BOWEL = "small-bowel"
    BREAST = "breast"
    PROSTATE = "prostate"
    BLADDER = "bladder"
    OVARY_UTERUS = "ovary-uterus"
    HEAD_NECK = "head-neck"


# The lexicon: site -> words (regular-expression fragments, matched case-insensitively at word starts).
SITE_LEXICON: Final[dict[Site, tuple[str, ...]]] = {
    Site.BILE_DUCT: (
        r"bile\s+ducts?",
        r"biliary",
        r"common\s+(?:hepatic|bile)\s+duct",
        r"(?:right|left)\s+hepatic\s+duct",
        r"hepatic\s+duct",
        r"CBD",
        r"CHD",
        r"hil(?:um|ar)",
        r"perihilar",
        r"bifurcation",
        r"confluence",
        r"cholangio\w*",
        r"klatskin",
        r"bile(?:\s+(?:aspirate|fluid|cytology))?",
    ),
    Site.LIVER: (r"liver", r"hepatic(?!\s+(?:flexure|ducts?))", r"hepatectomy", r"segment\s+[IVX1-8]+\b"),
    Site.GALLBLADDER: (r"gall\s*bladder", r"cholecystectomy"),
    Site.AMPULLA: (r"ampull\w*", r"papilla\s+of\s+vater", r"periampullary"),
    Site.PANCREAS: (r"pancrea\w*", r"whipple", r"uncinate"),
    Site.LYMPH_NODE: (r"lymph\s+nodes?", r"nodal", r"(?:portal|periportal|peripancreatic)\s+node"),
    Site.METASTASIS: (r"metasta\w*", r"secondary\s+deposits?"),
    Site.SALIVARY_GLAND: (r"salivary", r"parotid", r"submandibular", r"sublingual", r"minor\s+salivary", r"lip"),
    Site.LACRIMAL_GLAND: (r"lacrimal", r"dacryo\w*"),
    Site.ORBIT: (r"orbit\w*", r"periorbital"),
    Site.KIDNEY: (r"kidneys?", r"renal", r"nephrectomy"),
    Site.LUNG: (r"lungs?", r"pulmonary", r"bronch\w*", r"pleura\w*", r"transbronchial"),
    Site.AORTA: (r"aort\w*",),
    Site.RETROPERITONEUM: (r"retroperiton\w*",),
    Site.MENINGES: (r"pachymening\w*", r"mening\w*", r"dura"),
    Site.THYROID: (r"thyroid\w*",),
    Site.SKIN: (r"skin", r"cutaneous", r"dermal", r"basal\s+cell", r"shave", r"punch\s+biopsy", r"cheek", r"scalp"),
    Site.COLORECTUM: (r"colon", r"colonic", r"colorectal", r"rectum", r"rectal", r"sigmoid", r"caecum", r"cecum",
                      r"hepatic\s+flexure", r"splenic\s+flexure"),
    Site.STOMACH: (r"stomach", r"gastric", r"antrum", r"antral"),
    Site.ESOPHAGUS: (r"o?esophag\w*",),
    Site.SMALL_BOWEL: (r"ileum", r"ileal", r"jejun\w*"),
    Site.BREAST: (r"breast", r"mammary", r"ductal\s+carcinoma\s+in\s+situ"),
    Site.PROSTATE: (r"prostat\w*",),
    Site.BLADDER: (r"urinary\s+bladder", r"urothelial"),
    Site.OVARY_UTERUS: (r"ovar\w*", r"uter\w*", r"endometri\w*", r"cervix", r"cervical\s+(?:biopsy|smear)"),
    Site.HEAD_NECK: (r"tongue", r"larynx", r"laryngeal", r"tonsil\w*", r"nasopharyn\w*"),
}  # fmt: skip

PANCREATOBILIARY: Final = frozenset(
    {Site.BILE_DUCT, Site.LIVER, Site.GALLBLADDER, Site.AMPULLA, Site.PANCREAS}
)
"""Hepatobiliary or pancreatic specimens: a carcinoma of one of these proves the presumption wrong."""
PANCREATOBILIARY_ONLY: Final = frozenset(PANCREATOBILIARY)
"""Sites that are not "another organ" for the IBD exclusion (liver and gallbladder biopsies go with the ducts)."""
IGG4_RD_OTHER_ORGANS: Final = frozenset(
    {
        Site.SALIVARY_GLAND,
        Site.LACRIMAL_GLAND,
        Site.ORBIT,
        Site.KIDNEY,
        Site.LUNG,
        Site.AORTA,
        Site.RETROPERITONEUM,
        Site.MENINGES,
        Site.THYROID,
    }
)
"""Typical IgG4-RD organs beyond the pancreas and bile ducts: an IgG4-RD biopsy of one is another organ."""
NEUTRAL: Final = frozenset({Site.LYMPH_NODE, Site.METASTASIS})
OTHER_SITES: Final = frozenset(Site) - PANCREATOBILIARY - NEUTRAL
"""A carcinoma named with one of these sites is not a pancreatobiliary carcinoma."""

_PRIMARY_WORDS = re.compile(
    r"\b(?:pancrea\w*|biliary|bile\s+ducts?|cholangio\w*|klatskin|ampull\w*|gall\s*bladder"
    r"|pancreat(?:ic)?o-?biliary|upper\s+gi\s+/\s+pancreatobiliary)",
    re.IGNORECASE,
)
"""Words that attribute a lymph-node or metastatic carcinoma to a pancreatobiliary primary (not "liver":
the liver is where metastases land, and not "hilar": lymph nodes have hila)."""
_CARCINOMA_WORDS = re.compile(r"\b(?:adeno)?carcinomas?\b|\bcholangiocarcinomas?\b|\bklatskin", re.IGNORECASE)
_COMPARISON = re.compile(
    r"\b(?:mimic\w*|masquerad\w*|simulat\w*|imitat\w*|differential(?:\s+diagnosis)?|versus|vs\.?"
    r"|pseudotumou?r|rather\s+than|instead\s+of)\b",
    re.IGNORECASE,
)
"""A carcinoma named as a comparison ("a mimicker of cholangiocarcinoma", "differential includes ...")
is not a diagnosis. The reader should already not affirm it; this keeps a false proof out regardless."""
_DIAGNOSIS_SECTIONS = re.compile(
    r"diagnos|conclusion|impression|interpretation|opinion|summary|final|addend|result", re.IGNORECASE
)
_SPECIMEN_LINE = re.compile(
    r"^\s*(?:(?:specimens?|source|site|tissue|material|part\s+\w+|received)\b[^:\n]{0,40}:"
    r"|\(?[A-H1-9][.)]\s+\S"
    r"|[^:\n]{0,80}\b(?:biops\w*|brush\w*|resection|excision|fna|fine[- ]needle|aspirat\w*|cytology|core)\b"
    r"[^:\n]{0,40}:)",
    re.IGNORECASE,
)

_NOT_SPECIMEN_LINE = re.compile(
    r"^\s*(?:clinical\s+|pertinent\s+)?(?:history|indication|reason|comparison|information|question|notes?)\b",
    re.IGNORECASE,
)
_SITE_PATTERNS: Final[tuple[tuple[Site, re.Pattern[str]], ...]] = tuple(
    (site, re.compile(r"\b(?:" + "|".join(words) + r")\b", re.IGNORECASE))
    for site, words in SITE_LEXICON.items()
)
_MAX_LINE = 300
_MAX_SPECIMEN_TEXT = 50_000
"""Specimen lines are looked for in the report's first 50,000 characters (the specimen block heads a
pathology report); this bounds the work hostile text can cause."""


def sites_in(text: str) -> frozenset[Site]:
    """Every site the lexicon finds in ``text``."""
    return frozenset(site for site, pattern in _SITE_PATTERNS if pattern.search(text))


def specimen_sites(labels: Iterable[str], text: str) -> frozenset[Site]:
    """The specimen's sites from the report's title/code labels and the specimen lines of its text."""
    found: set[Site] = set()
    for label in labels:
        found |= sites_in(label[:_MAX_LINE])
    for line in text[:_MAX_SPECIMEN_TEXT].splitlines():
        if _SPECIMEN_LINE.match(line) and not _NOT_SPECIMEN_LINE.match(line):
            found |= sites_in(line[:_MAX_LINE])
    return frozenset(found)


_ATTRIBUTION = re.compile(
    r"\b(?:consistent|compatible)\s+with\b|\bin\s+keeping\s+with\b|\bconfirms?\b|\bsupports?\b", re.IGNORECASE
)
_PRIMARY_OR_ORIGIN = re.compile(r"\b(?:primary|origin)\b", re.IGNORECASE)
_ATTRIBUTION_VETO = re.compile(
    r"\b(?:not|no|unlikely|against|exclud\w*|cannot|possibl\w*|favou?r\w*|suggest\w*|versus|vs)\b",
    re.IGNORECASE,
)


def attributes_pancreatobiliary_primary(text: str) -> bool:
    """Whether a diagnosis/conclusion sentence of ``text`` states that the tumour is of pancreatobiliary primary.

    "Metastatic adenocarcinoma." followed by "The immunoprofile is in keeping with a pancreatobiliary primary."
    attributes the node's carcinoma across sentences. Only an affirmative attribution counts: a negated or
    hedged one ("cannot exclude", "favour") never does, since a false tissue proof would silence the card.
    """
    for sentence in read_document(text[:_MAX_SPECIMEN_TEXT]):
        if sentence.section is not None and not _DIAGNOSIS_SECTIONS.search(sentence.section):
            continue
        line = sentence.text[:_MAX_LINE]
        if (
            _PRIMARY_WORDS.search(line)
            and _PRIMARY_OR_ORIGIN.search(line)
            and _ATTRIBUTION.search(line)
            and not _ATTRIBUTION_VETO.search(line)
        ):
            return True
    return False


def in_diagnosis(finding: TextFinding) -> bool:
    """True when the mention was read in a diagnosis/conclusion section, or in text without headings."""
    return finding.section is None or bool(_DIAGNOSIS_SECTIONS.search(finding.section))


def carcinoma_site_is_pancreatobiliary(
    phrase: str, specimen: frozenset[Site], attributed: bool = False
) -> bool:
    """Whether a carcinoma stated in ``phrase`` is of a pancreatobiliary specimen or primary.

    The sentence decides when it names a site; otherwise the report's specimen does. Another site (skin,
    colon ...) anywhere in the sentence, or a specimen with another site, never proves. A lymph node or a
    metastasis proves only when its sentence, or (``attributed``) another diagnosis sentence of the report,
    attributes it to a pancreatobiliary primary.
    """
    named = sites_in(phrase)
    if named & OTHER_SITES:
        return False
    if named & NEUTRAL or (not named and specimen & NEUTRAL and not specimen & PANCREATOBILIARY):
        return attributed or bool(_PRIMARY_WORDS.search(phrase))
    if named & PANCREATOBILIARY:
        return True
    return bool(specimen & PANCREATOBILIARY) and not specimen & OTHER_SITES


def proves_carcinoma(finding: TextFinding, specimen: frozenset[Site], attributed: bool = False) -> bool:
    """True when a pathology finding is tissue proof of a pancreatobiliary carcinoma (section 5).

    ``attributed``: the report attributes its tumour to a pancreatobiliary primary elsewhere in its diagnosis.
    """
    if finding.concept not in {Concept.CARCINOMA, Concept.CHOLANGIOCARCINOMA} or not finding.affirmed:
        return False
    if not in_diagnosis(finding) or not _CARCINOMA_WORDS.search(finding.phrase):
        return False
    if _COMPARISON.search(finding.phrase):
        return False
    return carcinoma_site_is_pancreatobiliary(finding.phrase, specimen, attributed)


def other_organ_sites(specimen: frozenset[Site]) -> frozenset[Site]:
    """The typical IgG4-RD organs beyond the pancreas and bile ducts that a specimen comes from."""
    return specimen & IGG4_RD_OTHER_ORGANS

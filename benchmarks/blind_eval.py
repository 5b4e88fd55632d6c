"""Score the narrative reader on a directory of hand-labelled (blind) sentences and reports.

Usage::

    .venv/bin/python benchmarks/blind_eval.py /work/blind/round1 [--json out.json] [--misses]

The directory holds ``*-sentences.jsonl`` and ``*-reports.jsonl`` in the format of the blind brief's
LABEL_SCHEMA.md. Printed figures:

- sentences: precision and recall of affirmed findings, matched as (concept, laterality), per domain and
  per concept; immunostain numbers (ratio and count both equal to the label, on matched immunostains);
  assertion accuracy on the labelled mentions the reader found (same concept, any assertion).
- reports: affirmed-finding precision/recall at report level (laterality combined: right + left =
  bilateral; immunostain numbers combined across sentences), tissue-proof false positives/negatives, and
  raises-presumption agreement.

Scoring convention: the reader reports every cholangiocarcinoma mention also as ``carcinoma`` (same
sentence, same assertion: downstream rules look for either); labels name the specific concept only, so
a carcinoma implied that way is not scored separately (in labels too, when they give both).

Immunostain numbers match when equal or one apart (the reader reads ">50" as 51, "<5%" as 4).

Tissue proof here is an APPROXIMATION of CLINICAL_SPEC section 5 (the real rule lives in core/reports.py
and core/presumption.py): a report of category pathology or cytology with an affirmed carcinoma or
cholangiocarcinoma finding, and a pancreatobiliary site word (liver, bile duct, biliary, hilum/hilar,
hepatic duct, CBD/CHD, gallbladder, ampulla, pancreas, brushing, bile) in that finding's sentence or
the 300 characters after it, in the title or in a "Specimen:" line. Raises presumption: a radiology or procedure report with a
cholangiocarcinoma mention that is affirmed or uncertain.
(Version 1 of this script, used for the first "before" run, looked for the site word anywhere in the
text and scored implied carcinoma separately; the README gives both versions' figures.)
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cds_service.core.evidence import ReportFacts
from cds_service.core.findings import Assertion, Concept, TextFinding
from cds_service.core.narrative import extract_findings
from cds_service.core.presumption import proves_malignancy, raises_presumption
from cds_service.core.reports import extract_reports
from cds_service.core.resources import read_resource

DOMAIN_OF: dict[str, str] = {
    "pancreas-diffuse-enlargement": "pancreas-biliary",
    "pancreas-capsule-rim": "pancreas-biliary",
    "pancreas-focal-mass": "pancreas-biliary",
    "biliary-proximal": "pancreas-biliary",
    "biliary-distal": "pancreas-biliary",
    "lacrimal-gland": "glands",
    "parotid-gland": "glands",
    "submandibular-gland": "glands",
    "sublingual-gland": "glands",
    "peribronchovascular-septal-thickening": "chest",
    "paravertebral-band": "chest",
    "renal-pelvis-thickening": "kidney",
    "renal-cortex-low-density": "kidney",
    "abdominal-aortic-wall-thickening": "retroperitoneum",
    "periaortic-soft-tissue": "retroperitoneum",
    "thoracic-aorta": "retroperitoneum",
    "lymphoplasmacytic-infiltrate": "histopathology",
    "obliterative-phlebitis": "histopathology",
    "storiform-fibrosis": "histopathology",
    "igg4-immunostain": "immunostaining",
    "rapid-progression": "exclusions",
    "erdheim-chester": "exclusions",
    "splenomegaly": "exclusions",
    "atypia": "exclusions",
    "pathology-other": "exclusions",
    "carcinoma": "malignancy",
    "cholangiocarcinoma": "malignancy",
}
LATERAL = {
    "lacrimal-gland",
    "parotid-gland",
    "submandibular-gland",
    "sublingual-gland",
    "renal-cortex-low-density",
}
_SITE = re.compile(
    r"\b(liver|hepat\w*|bile|biliary|hil(?:um|ar)|CBD|CHD|gall\s*bladder|ampull\w*|pancrea\w*|brushings?|"
    r"cholangio\w*|klatskin)\b",
    re.I,
)
_PATHOLOGY = {"pathology", "cytology"}
_SPECIMEN_LINE = re.compile(r"^[ \t]*specimens?\b[^:\n]{0,40}:([^\n]*)", re.I | re.M)


def _near(text: str, phrase: str) -> str:
    """The phrase and the 300 characters after it (the next line of a diagnosis: "... pancreatobiliary primary")."""
    at = text.find(phrase)
    return phrase if at < 0 else text[at : at + len(phrase) + 300]


def _scoreable(found: list[TextFinding]) -> list[TextFinding]:
    """Drop a carcinoma that only restates a cholangiocarcinoma mention of the same sentence."""
    cca = {(f.phrase, f.assertion) for f in found if f.concept is Concept.CHOLANGIOCARCINOMA}
    return [f for f in found if not (f.concept is Concept.CARCINOMA and (f.phrase, f.assertion) in cca)]


def _gold_scoreable(gold: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cca = {g["assertion"] for g in gold if g["concept"] == "cholangiocarcinoma" and "assertion" in g}
    return [g for g in gold if not (g["concept"] == "carcinoma" and g.get("assertion") in cca)]


def _rows(directory: Path, suffix: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in sorted(directory.glob(f"*-{suffix}.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append(json.loads(line))
    return rows


def _lat(concept: str, value: Any) -> str | None:
    return str(value) if concept in LATERAL and value else None


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _same(got: float | None, gold: Any) -> bool:
    """Equal, or one apart: the reader reads a bound as the nearest value inside it (">50" -> 51)."""
    want = _num(gold)
    return got == want or (got is not None and want is not None and abs(got - want) <= 1)


class Tally:
    """True/false positives and negatives per key."""

    def __init__(self) -> None:
        self.tp: Counter[str] = Counter()
        self.fp: Counter[str] = Counter()
        self.fn: Counter[str] = Counter()

    def add(self, key: str, gold: Counter[Any], pred: Counter[Any]) -> None:
        both = gold & pred
        self.tp[key] += sum(both.values())
        self.fp[key] += sum((pred - both).values())
        self.fn[key] += sum((gold - both).values())

    def pr(self, keys: list[str] | None = None) -> tuple[float, float, int, int, int]:
        ks = keys if keys is not None else list(set(self.tp) | set(self.fp) | set(self.fn))
        tp = sum(self.tp[k] for k in ks)
        fp = sum(self.fp[k] for k in ks)
        fn = sum(self.fn[k] for k in ks)
        p = tp / (tp + fp) if tp + fp else 1.0
        r = tp / (tp + fn) if tp + fn else 1.0
        return p, r, tp, fp, fn


def _combine(findings: list[tuple[str, str | None]]) -> Counter[tuple[str, str | None]]:
    """Report-level set: one per concept (and side), right + left = bilateral."""
    by: dict[str, set[str | None]] = defaultdict(set)
    for concept, lat in findings:
        by[concept].add(lat)
    out: Counter[tuple[str, str | None]] = Counter()
    for concept, lats in by.items():
        if concept in LATERAL:
            if "bilateral" in lats or {"left", "right"} <= lats:
                out[(concept, "bilateral")] = 1
            elif "left" in lats:
                out[(concept, "left")] = 1
            elif "right" in lats:
                out[(concept, "right")] = 1
            else:
                out[(concept, None)] = 1
        else:
            out[(concept, None)] = 1
    return out


def _stain(found: list[TextFinding]) -> tuple[float | None, float | None]:
    ratio = max((f.ratio_percent for f in found if f.ratio_percent is not None), default=None)
    cells = max((f.cells_per_hpf for f in found if f.cells_per_hpf is not None), default=None)
    return ratio, cells


def evaluate(directory: Path, misses: bool = False) -> dict[str, Any]:
    """Score the reader on one directory; returns the figures (also printed by ``main``)."""
    out: dict[str, Any] = {}
    # --- sentences
    sent = Tally()
    assert_ok = assert_n = 0
    assert_by: Counter[str] = Counter()
    assert_ok_by: Counter[str] = Counter()
    stain_ok = stain_n = 0
    miss_lines: list[str] = []
    for row in _rows(directory, "sentences"):
        gold_all = _gold_scoreable(row.get("findings") or [])
        found = _scoreable(extract_findings(str(row["text"])))
        gold = Counter(
            (g["concept"], _lat(g["concept"], g.get("laterality")))
            for g in gold_all
            if g["assertion"] == "affirmed"
        )
        pred = Counter(
            (str(f.concept), _lat(str(f.concept), f.laterality and str(f.laterality)))
            for f in found
            if f.assertion is Assertion.AFFIRMED
        )
        gold, pred = Counter(set(gold)), Counter(set(pred))
        for concept in {c for c, _ in gold} | {c for c, _ in pred}:
            sent.add(
                concept,
                Counter({k: v for k, v in gold.items() if k[0] == concept}),
                Counter({k: v for k, v in pred.items() if k[0] == concept}),
            )
        if misses and gold != pred:
            miss_lines.append(
                f"{row['id']}: gold={sorted(map(str, gold))} pred={sorted(map(str, pred))}\n  {row['text']}"
            )
        for g in gold_all:
            same = [f for f in found if str(f.concept) == g["concept"]]
            if not same:
                continue
            assert_n += 1
            assert_by[DOMAIN_OF.get(g["concept"], "?")] += 1
            if any(str(f.assertion) == g["assertion"] for f in same):
                assert_ok += 1
                assert_ok_by[DOMAIN_OF.get(g["concept"], "?")] += 1
            if g["concept"] == "igg4-immunostain" and g["assertion"] == "affirmed":
                stain_n += 1
                ratio, cells = _stain(same)
                if _same(ratio, g.get("ratio_percent")) and _same(cells, g.get("cells_per_hpf")):
                    stain_ok += 1
    domains = sorted(set(DOMAIN_OF.values()))
    out["sentences"] = {
        "overall": sent.pr(),
        "domains": {d: sent.pr([c for c, dd in DOMAIN_OF.items() if dd == d]) for d in domains},
        "concepts": {c: sent.pr([c]) for c in sorted(DOMAIN_OF)},
        "assertion_accuracy": (assert_ok / assert_n if assert_n else 1.0, assert_n),
        "assertion_by_domain": {
            d: (assert_ok_by[d] / assert_by[d], assert_by[d]) for d in domains if assert_by[d]
        },
        "immunostain_numbers": (stain_ok, stain_n),
    }
    # --- reports
    rep = Tally()
    tp_fp = tp_fn = pres_agree = n_rep = 0
    rep_stain_ok = rep_stain_n = 0
    for row in _rows(directory, "reports"):
        n_rep += 1
        everything = extract_findings(str(row["text"]))
        found = everything
        gold = _combine(
            [(g["concept"], _lat(g["concept"], g.get("laterality"))) for g in row.get("findings") or []]
        )
        aff = [f for f in found if f.assertion is Assertion.AFFIRMED]
        pred = _combine(
            [(str(f.concept), _lat(str(f.concept), f.laterality and str(f.laterality))) for f in aff]
        )
        if ("cholangiocarcinoma", None) in gold and ("cholangiocarcinoma", None) in pred:
            gold.pop(("carcinoma", None), None)  # the scoring convention, at report level
            pred.pop(("carcinoma", None), None)
        for concept in {c for c, _ in gold} | {c for c, _ in pred}:
            rep.add(
                concept,
                Counter({k: v for k, v in gold.items() if k[0] == concept}),
                Counter({k: v for k, v in pred.items() if k[0] == concept}),
            )
        if misses and gold != pred:
            miss_lines.append(f"{row['id']}: gold={sorted(map(str, gold))} pred={sorted(map(str, pred))}")
        for g in row.get("findings") or []:
            if g["concept"] == "igg4-immunostain":
                rep_stain_n += 1
                ratio, cells = _stain([f for f in aff if f.concept is Concept.IGG4_IMMUNOSTAIN])
                if _same(ratio, g.get("ratio_percent")) and _same(cells, g.get("cells_per_hpf")):
                    rep_stain_ok += 1
        category = str(row.get("category", "")).lower()
        specimen = " ".join(m.group(1) for m in _SPECIMEN_LINE.finditer(str(row["text"])))
        sited = _SITE.search(str(row.get("title", ""))) or _SITE.search(specimen)
        proof = category in _PATHOLOGY and any(
            f.concept in (Concept.CARCINOMA, Concept.CHOLANGIOCARCINOMA)
            and f.assertion is Assertion.AFFIRMED
            and (sited or _SITE.search(_near(str(row["text"]), f.phrase)))
            for f in everything
        )
        gold_proof = bool(row.get("tissue_proof"))
        tp_fp += int(proof and not gold_proof)
        tp_fn += int(gold_proof and not proof)
        raises = category not in _PATHOLOGY and any(
            f.concept is Concept.CHOLANGIOCARCINOMA
            and f.assertion in (Assertion.AFFIRMED, Assertion.UNCERTAIN)
            for f in found
        )
        pres_agree += int(raises == bool(row.get("raises_presumption")))
        if misses and (proof != gold_proof or raises != bool(row.get("raises_presumption"))):
            miss_lines.append(
                f"{row['id']}: proof {proof}/{gold_proof} raises {raises}/{row.get('raises_presumption')}"
            )
    out["reports"] = {
        "n": n_rep,
        "overall": rep.pr(),
        "domains": {d: rep.pr([c for c, dd in DOMAIN_OF.items() if dd == d]) for d in domains},
        "tissue_proof_false_positives": tp_fp,
        "tissue_proof_false_negatives": tp_fn,
        "raises_presumption_agreement": (pres_agree, n_rep),
        "immunostain_numbers": (rep_stain_ok, rep_stain_n),
    }
    if misses:
        out["misses"] = miss_lines
    return out


def _fmt(pr: tuple[float, float, int, int, int]) -> str:
    p, r, tp, fp, fn = pr
    return f"P {p:.3f}  R {r:.3f}  (tp {tp}, fp {fp}, fn {fn})"


_CATEGORY_CODES = {"pathology": "SP", "cytology": "CY", "radiology": "RAD", "procedure": "OTH"}


def report_facts(row: dict[str, Any]) -> ReportFacts:
    """One labelled report through the service's real reading path, as a hook would read it.

    A DiagnosticReport with the row's category (v2-0074), its title as ``code.text`` and its text as a
    ``presentedForm`` attachment, read by ``core.resources`` and ``core.reports``.
    """
    code = _CATEGORY_CODES.get(str(row.get("category", "")).lower(), "OTH")
    raw = {
        "resourceType": "DiagnosticReport",
        "id": str(row["id"]),
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": code}]}],
        "code": {"text": str(row.get("title", ""))},
        "effectiveDateTime": "2026-11-01",
        "presentedForm": [
            {"contentType": "text/plain", "data": base64.b64encode(str(row["text"]).encode()).decode()}
        ],
    }
    [facts] = extract_reports([read_resource("DiagnosticReport", raw)])
    return facts


def service_rule(row: dict[str, Any]) -> tuple[bool, bool]:
    """(proves carcinoma, raises the presumption) for one labelled report by the service's own rules."""
    facts = report_facts(row)
    return proves_malignancy(facts), raises_presumption(facts)


def service_rule_figures(directory: Path) -> dict[str, int]:
    """Tissue proof and presumption by the service's rules against the labels of every report in ``directory``."""
    out = {"n": 0, "proof_fp": 0, "proof_fn": 0, "raises_agree": 0}
    for path in sorted(directory.glob("*-reports.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            proves, raises = service_rule(row)
            gold = bool(row.get("tissue_proof"))
            out["n"] += 1
            out["proof_fp"] += int(proves and not gold)
            out["proof_fn"] += int(gold and not proves)
            out["raises_agree"] += int(raises == bool(row.get("raises_presumption")))
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: print the figures for one directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--misses", action="store_true", help="list the disagreements (reads the set's text)")
    args = parser.parse_args(argv)
    res = evaluate(args.directory, misses=args.misses)
    s, r = res["sentences"], res["reports"]
    print(f"# blind_eval {args.directory}")
    print(f"sentences, affirmed findings: {_fmt(s['overall'])}")
    acc, n = s["assertion_accuracy"]
    print(f"sentences, assertion accuracy on mentions found: {acc:.3f} (n {n})")
    print(
        f"sentences, immunostain numbers exact: {s['immunostain_numbers'][0]}/{s['immunostain_numbers'][1]}"
    )
    print("per domain (sentences):")
    for d, pr in s["domains"].items():
        if pr[2] + pr[3] + pr[4]:
            a = s["assertion_by_domain"].get(d)
            extra = f"  assertion {a[0]:.3f} (n {a[1]})" if a else ""
            print(f"  {d:18s} {_fmt(pr)}{extra}")
    print("per concept (sentences):")
    for c, pr in s["concepts"].items():
        if pr[2] + pr[3] + pr[4]:
            print(f"  {c:38s} {_fmt(pr)}")
    print(f"reports ({r['n']}), affirmed findings: {_fmt(r['overall'])}")
    print("per domain (reports):")
    for d, pr in r["domains"].items():
        if pr[2] + pr[3] + pr[4]:
            print(f"  {d:18s} {_fmt(pr)}")
    print(f"reports, immunostain numbers exact: {r['immunostain_numbers'][0]}/{r['immunostain_numbers'][1]}")
    print(
        f"reports, tissue proof (approximate rule): false positives {r['tissue_proof_false_positives']}, "
        f"false negatives {r['tissue_proof_false_negatives']}"
    )
    agree, n_rep = r["raises_presumption_agreement"]
    print(f"reports, raises_presumption agreement: {agree}/{n_rep}")
    rule = service_rule_figures(args.directory)
    print(
        f"reports, the service's own rule (core.reports + core.tissue): tissue proof false positives "
        f"{rule['proof_fp']}, false negatives {rule['proof_fn']}; raises_presumption agreement "
        f"{rule['raises_agree']}/{rule['n']}"
    )
    for line in res.get("misses", []):
        print(line)
    if args.json:
        args.json.write_text(
            json.dumps({k: v for k, v in res.items() if k != "misses"}, indent=1), encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

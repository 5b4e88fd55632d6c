"""Tables for every ACR/EULAR item, the boundaries, exclusions and the four classification values."""

from datetime import date
from decimal import Decimal

import pytest

from cds_service.core.criteria import (
    Classification,
    Entry,
    evaluate,
    immunostaining_points,
    serum_igg4_points,
)
from cds_service.core.domains import Domain
from cds_service.core.evidence import (
    LabResult,
    PatientEvidence,
    ReportFacts,
    ReportKind,
    UlnSource,
)
from cds_service.core.findings import Assertion, Concept, Laterality, TextFinding

A, N, U = Assertion.AFFIRMED, Assertion.NEGATED, Assertion.UNCERTAIN
BI, LEFT = Laterality.BILATERAL, Laterality.LEFT


def f(concept, assertion=A, laterality=None, **kw):
    return TextFinding(concept, assertion, f"phrase about {concept.value}", laterality, **kw)


def imaging(*findings, contrast=True):
    return ReportFacts(
        "DiagnosticReport/img", ReportKind.IMAGING, date(2026, 10, 1), tuple(findings), contrast
    )


def pathology(*findings):
    return ReportFacts("DiagnosticReport/path", ReportKind.PATHOLOGY, date(2026, 10, 2), tuple(findings))


def igg4(value, high="1.35", source=UlnSource.REFERENCE_HIGH):
    return LabResult(
        "2469-5", "Observation/igg4", date(2026, 9, 1), "g/L", Decimal(value), None, Decimal(high), source
    )


def lab(code, value=None, low=None, high=None, polarity=None, when=date(2026, 9, 1), unit="g/L"):
    dec = lambda v: None if v is None else Decimal(str(v))  # noqa: E731
    return LabResult(code, f"Observation/{code}", when, unit, dec(value), dec(low), dec(high), None, polarity)


def evidence(*reports, labs=(), conditions=()):
    ev = PatientEvidence(reports=list(reports), conditions=list(conditions))
    for result in labs:
        ev.labs.setdefault(result.code, []).append(result)
    return ev


def domain(result, d):
    return result.domains[d].points


# ------------------------------------------------------------------ serum IgG4 boundaries


@pytest.mark.parametrize(
    ("value", "uln", "points"),
    [
        ("1.35", "1.35", 0),  # exactly ULN is not above it
        ("1.36", "1.35", 4),
        ("2.69", "1.35", 4),
        ("2.70", "1.35", 6),  # exactly 2 x ULN scores 6
        ("6.75", "1.35", 6),  # exactly 5 x ULN scores 6
        ("6.76", "1.35", 11),
        ("2.430", "0.864", 6),  # the published case: 2.81 x ULN
        ("0.5", "1.35", 0),
    ],
)
def test_serum_igg4_points(value, uln, points):
    assert serum_igg4_points(Decimal(value), Decimal(uln)) == points
    result = evaluate(evidence(labs=[igg4(value, uln)]), presumed_cca=True)
    assert domain(result, Domain.SERUM_IGG4) == points
    assert result.domains[Domain.SERUM_IGG4].assessed


def test_highest_igg4_relative_to_its_own_uln_counts():
    # 3.0 against ULN 2.01 (1.49x) is lower than 2.0 against ULN 0.864 (2.31x).
    low_relative = LabResult(
        "2469-5",
        "Observation/a",
        date(2026, 9, 1),
        "g/L",
        Decimal("3.0"),
        None,
        Decimal("2.01"),
        UlnSource.REFERENCE_HIGH,
    )
    high_relative = LabResult(
        "2469-5",
        "Observation/b",
        date(2025, 1, 1),
        "g/L",
        Decimal("2.0"),
        None,
        Decimal("0.864"),
        UlnSource.REFERENCE_HIGH,
    )
    result = evaluate(evidence(labs=[low_relative, high_relative]), presumed_cca=True)
    assert domain(result, Domain.SERUM_IGG4) == 6
    assert result.igg4 is not None and result.igg4.result.reference == "Observation/b"


def test_igg4_not_measured_is_not_assessed():
    result = evaluate(evidence(), presumed_cca=True)
    assert not result.domains[Domain.SERUM_IGG4].assessed
    assert domain(result, Domain.SERUM_IGG4) == 0


# ------------------------------------------------------------------ immunostaining table


@pytest.mark.parametrize(
    ("ratio", "cells", "points"),
    [
        (None, None, 7),
        (41, 5, 7),
        (80, None, 7),
        (30, 15, 7),
        (None, 12, 7),
        (40, 9, 0),
        (None, 9, 0),
        (41, 10, 14),
        (70, 200, 14),
        (71, 50, 14),
        (71, 51, 16),
        (95, 120, 16),
    ],
)
def test_immunostaining_points(ratio, cells, points):
    assert immunostaining_points(ratio, cells) == points


def test_immunostain_only_counts_in_pathology_and_when_affirmed():
    stain = f(Concept.IGG4_IMMUNOSTAIN, ratio_percent=75, cells_per_hpf=60)
    assert domain(evaluate(evidence(pathology(stain)), True), Domain.IMMUNOSTAINING) == 16
    assert domain(evaluate(evidence(imaging(stain)), True), Domain.IMMUNOSTAINING) == 0
    negated = f(Concept.IGG4_IMMUNOSTAIN, N)
    result = evaluate(evidence(pathology(negated)), True)
    assert domain(result, Domain.IMMUNOSTAINING) == 0 and result.domains[Domain.IMMUNOSTAINING].assessed


# ------------------------------------------------------------------ imaging and pathology items


@pytest.mark.parametrize(
    ("reports", "target", "points"),
    [
        # histopathology
        ([pathology(f(Concept.LYMPHOPLASMACYTIC_INFILTRATE))], Domain.HISTOPATHOLOGY, 4),
        (
            [pathology(f(Concept.LYMPHOPLASMACYTIC_INFILTRATE), f(Concept.OBLITERATIVE_PHLEBITIS))],
            Domain.HISTOPATHOLOGY,
            6,
        ),
        (
            [pathology(f(Concept.LYMPHOPLASMACYTIC_INFILTRATE), f(Concept.STORIFORM_FIBROSIS))],
            Domain.HISTOPATHOLOGY,
            13,
        ),
        (
            [pathology(f(Concept.LYMPHOPLASMACYTIC_INFILTRATE), f(Concept.STORIFORM_FIBROSIS, N))],
            Domain.HISTOPATHOLOGY,
            4,
        ),
        ([pathology(f(Concept.LYMPHOPLASMACYTIC_INFILTRATE, N))], Domain.HISTOPATHOLOGY, 0),
        # glands: bilateral sets only
        ([imaging(f(Concept.SUBMANDIBULAR_GLAND, laterality=BI))], Domain.GLANDS, 6),
        (
            [
                imaging(
                    f(Concept.SUBMANDIBULAR_GLAND, laterality=BI), f(Concept.LACRIMAL_GLAND, laterality=BI)
                )
            ],
            Domain.GLANDS,
            14,
        ),
        ([imaging(f(Concept.PAROTID_GLAND, laterality=LEFT))], Domain.GLANDS, 0),
        ([imaging(f(Concept.PAROTID_GLAND))], Domain.GLANDS, 0),
        ([imaging(f(Concept.PAROTID_GLAND, U, BI))], Domain.GLANDS, 0),
        # chest
        ([imaging(f(Concept.PERIBRONCHOVASCULAR_THICKENING))], Domain.CHEST, 4),
        (
            [imaging(f(Concept.PERIBRONCHOVASCULAR_THICKENING), f(Concept.PARAVERTEBRAL_BAND))],
            Domain.CHEST,
            10,
        ),
        # pancreas and biliary tree
        ([imaging(f(Concept.PANCREAS_DIFFUSE_ENLARGEMENT))], Domain.PANCREAS_BILIARY, 8),
        (
            [imaging(f(Concept.PANCREAS_DIFFUSE_ENLARGEMENT), f(Concept.PANCREAS_CAPSULE_RIM))],
            Domain.PANCREAS_BILIARY,
            11,
        ),
        (
            [imaging(f(Concept.PANCREAS_DIFFUSE_ENLARGEMENT), f(Concept.BILIARY_PROXIMAL))],
            Domain.PANCREAS_BILIARY,
            19,
        ),
        (
            [
                imaging(
                    f(Concept.PANCREAS_DIFFUSE_ENLARGEMENT),
                    f(Concept.PANCREAS_CAPSULE_RIM),
                    f(Concept.BILIARY_PROXIMAL),
                )
            ],
            Domain.PANCREAS_BILIARY,
            19,
        ),
        ([imaging(f(Concept.BILIARY_PROXIMAL))], Domain.PANCREAS_BILIARY, 0),  # isolated biliary disease
        (
            [imaging(f(Concept.PANCREAS_DIFFUSE_ENLARGEMENT), f(Concept.BILIARY_DISTAL))],
            Domain.PANCREAS_BILIARY,
            8,
        ),
        ([imaging(f(Concept.PANCREAS_FOCAL_MASS), f(Concept.BILIARY_PROXIMAL))], Domain.PANCREAS_BILIARY, 0),
        (
            [imaging(f(Concept.PANCREAS_DIFFUSE_ENLARGEMENT, N), f(Concept.BILIARY_PROXIMAL))],
            Domain.PANCREAS_BILIARY,
            0,
        ),
        # kidney
        ([imaging(f(Concept.RENAL_CORTEX_LOW_DENSITY, laterality=BI))], Domain.KIDNEY, 10),
        ([imaging(f(Concept.RENAL_CORTEX_LOW_DENSITY, laterality=LEFT))], Domain.KIDNEY, 0),
        ([imaging(f(Concept.RENAL_CORTEX_LOW_DENSITY, laterality=BI), contrast=False)], Domain.KIDNEY, 0),
        ([imaging(f(Concept.RENAL_PELVIS_THICKENING))], Domain.KIDNEY, 8),
        # retroperitoneum; thoracic aorta never scores here
        ([imaging(f(Concept.ABDOMINAL_AORTIC_WALL_THICKENING))], Domain.RETROPERITONEUM, 4),
        (
            [imaging(f(Concept.PERIAORTIC_SOFT_TISSUE), f(Concept.ABDOMINAL_AORTIC_WALL_THICKENING))],
            Domain.RETROPERITONEUM,
            8,
        ),
        ([imaging(f(Concept.THORACIC_AORTA))], Domain.RETROPERITONEUM, 0),
    ],
)
def test_domain_items(reports, target, points):
    result = evaluate(evidence(*reports), presumed_cca=True)
    assert domain(result, target) == points
    # Only the highest item of a domain counts: no domain exceeds its maximum.
    assert result.total == sum(d.points for d in result.domains.values())


def test_hypocomplementemia_scores_six_without_imaging():
    result = evaluate(evidence(labs=[lab("4485-9", 0.6, low=0.9, high=1.8)]), True)
    assert domain(result, Domain.KIDNEY) == 6
    normal = evaluate(evidence(labs=[lab("4485-9", 1.2, low=0.9, high=1.8)]), True)
    assert domain(normal, Domain.KIDNEY) == 0 and normal.domains[Domain.KIDNEY].assessed


# ------------------------------------------------------------------ threshold and classification


ALL_OTHER_DOMAINS_NEGATIVE = (
    f(Concept.PAROTID_GLAND, N),
    f(Concept.PERIBRONCHOVASCULAR_THICKENING, N),
    f(Concept.RENAL_PELVIS_THICKENING, N),
    f(Concept.PERIAORTIC_SOFT_TISSUE, N),
)
NO_TISSUE_FINDINGS = pathology(f(Concept.LYMPHOPLASMACYTIC_INFILTRATE, N), f(Concept.IGG4_IMMUNOSTAIN, N))


def test_nineteen_points_does_not_classify():
    ct = imaging(
        f(Concept.PANCREAS_DIFFUSE_ENLARGEMENT), f(Concept.BILIARY_PROXIMAL), *ALL_OTHER_DOMAINS_NEGATIVE
    )
    result = evaluate(evidence(ct, NO_TISSUE_FINDINGS, labs=[igg4("1.0")]), True)
    assert (result.total, result.maximum_possible) == (19, 19)
    assert result.classification is Classification.DOES_NOT_MEET


def test_twenty_points_classifies():
    ct = imaging(f(Concept.PANCREAS_DIFFUSE_ENLARGEMENT), f(Concept.PERIAORTIC_SOFT_TISSUE))
    result = evaluate(evidence(ct, labs=[igg4("1.4")]), True)
    assert result.total == 8 + 8 + 4 == 20
    assert result.classification is Classification.MEETS


def test_published_case_scores_35():
    ct = imaging(
        f(Concept.BILIARY_PROXIMAL),
        f(Concept.PANCREAS_DIFFUSE_ENLARGEMENT),
        f(Concept.RENAL_CORTEX_LOW_DENSITY, laterality=BI),
        f(Concept.CHOLANGIOCARCINOMA, U),
    )
    result = evaluate(evidence(ct, labs=[igg4("2.430", "0.864")]), presumed_cca=True)
    assert (
        domain(result, Domain.SERUM_IGG4),
        domain(result, Domain.PANCREAS_BILIARY),
        domain(result, Domain.KIDNEY),
    ) == (6, 19, 10)
    assert result.total == 35
    assert result.classification is Classification.MEETS
    assert result.entry is Entry.MET
    assert [(e.id, e.status.value) for e in result.exclusions] == [("suspicious-radiology", "unresolved")]


@pytest.mark.parametrize(
    ("ev", "presumed", "expected"),
    [
        # total < 20 but unassessed domains could reach 20
        (
            evidence(imaging(f(Concept.BILIARY_PROXIMAL)), labs=[igg4("1.6")]),
            True,
            Classification.INDETERMINATE,
        ),
        # no entry information at all
        (evidence(labs=[igg4("1.6")]), False, Classification.INDETERMINATE),
        # entry not met: imaging shows no involvement and nothing is presumed
        (
            evidence(imaging(f(Concept.PANCREAS_DIFFUSE_ENLARGEMENT, N)), labs=[igg4("1.6")]),
            False,
            Classification.DOES_NOT_MEET,
        ),
        # an exclusion present
        (
            evidence(
                imaging(
                    f(Concept.SPLENOMEGALY),
                    f(Concept.PANCREAS_DIFFUSE_ENLARGEMENT),
                    f(Concept.BILIARY_PROXIMAL),
                ),
                labs=[igg4("3.0")],
            ),
            True,
            Classification.EXCLUDED,
        ),
    ],
)
def test_classification_values(ev, presumed, expected):
    assert evaluate(ev, presumed).classification is expected


def test_does_not_meet_when_every_unassessed_domain_cannot_reach_twenty():
    every_domain_assessed = evidence(
        imaging(
            f(Concept.BILIARY_PROXIMAL),
            f(Concept.PAROTID_GLAND, N),
            f(Concept.PERIBRONCHOVASCULAR_THICKENING, N),
            f(Concept.RENAL_CORTEX_LOW_DENSITY, N),
            f(Concept.PERIAORTIC_SOFT_TISSUE, N),
            f(Concept.PANCREAS_DIFFUSE_ENLARGEMENT, N),
        ),
        pathology(f(Concept.LYMPHOPLASMACYTIC_INFILTRATE, N), f(Concept.IGG4_IMMUNOSTAIN, N)),
        labs=[igg4("1.6")],
    )
    result = evaluate(every_domain_assessed, True)
    assert result.total == 4 and result.maximum_possible == 4
    assert result.classification is Classification.DOES_NOT_MEET


def test_maximum_possible_adds_the_maximum_of_each_unassessed_domain():
    result = evaluate(evidence(labs=[igg4("1.6")]), True)
    assert result.maximum_possible == 4 + 13 + 16 + 14 + 10 + 19 + 10 + 8

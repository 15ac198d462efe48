"""Every hazard of ``docs/hazards.md`` is trained by a catalogue scenario, every catalogue scenario
names the hazards it trains, and the document, the code's ids and the scenario files agree."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

import pytest

from twin.scenarios.hazards import Hazard
from twin.scenarios.scenario_file import load_library, parse_scenario

DOC = Path(__file__).resolve().parents[2] / "docs" / "hazards.md"

AWAITING_SCENARIO: Final[dict[Hazard, str]] = {}
"""Hazards whose scenario is still to be written, by what it will play (none now: every hazard has
one). The second test fails as soon as one of them has a scenario, so the list can only shrink."""


def documented() -> list[str]:
    """The ids of the summary table (rows starting with a back-quoted id)."""
    return re.findall(r"^\| `([a-z0-9-]+)` \|", DOC.read_text(encoding="utf-8"), flags=re.MULTILINE)


def trained() -> dict[Hazard, list[str]]:
    found: dict[Hazard, list[str]] = {h: [] for h in Hazard}
    for scenario in load_library().values():
        for hazard in scenario.hazards:
            found[hazard].append(scenario.name)
    return found


def test_the_document_lists_exactly_the_codes_hazards_each_once_with_its_own_section() -> None:
    ids = documented()
    assert len(ids) == len(set(ids))
    assert ids == [h.value for h in Hazard]  # same order too: the code groups them as the document does
    text = DOC.read_text(encoding="utf-8")
    for hazard in Hazard:
        section = re.search(rf"^### `{re.escape(hazard.value)}` — .+$", text, flags=re.MULTILINE)
        assert section, hazard
        body = text[section.end() : text.find("\n### ", section.end())]
        for field in ("**Cause**", "**Detected by**", "**Staff must**"):
            assert field in body, (hazard, field)
        assert re.search(r"\[(V-S\d+|U|I|A|ACM|ISA|GIP|TPLC)\b", body), (hazard, "no source tag")


def test_every_hazard_is_trained_by_a_catalogue_scenario() -> None:
    untrained = sorted(h.value for h, names in trained().items() if not names and h not in AWAITING_SCENARIO)
    assert untrained == [], f"hazards with no scenario: {untrained}"
    already = sorted(h.value for h in AWAITING_SCENARIO if trained()[h])
    assert already == [], f"these now have a scenario: take them off AWAITING_SCENARIO: {already}"


def test_every_catalogue_scenario_names_the_hazards_it_trains() -> None:
    unnamed = sorted(s.name for s in load_library().values() if not s.hazards)
    assert unnamed == []


def test_a_scenario_naming_an_unknown_hazard_is_refused_where_it_says_so() -> None:
    text = """\
name: drill
title: Drill
hazards: [motor-stall, dragons]
description: x
learning_objectives: [y]
duration: 1h
fleet: {kind: generated, pumps: 1}
"""
    with pytest.raises(ValueError, match=r"drill.yaml:3:\d+: hazards\[1\]"):
        parse_scenario(text, "drill.yaml")

"""The two label sets, exactly as ``newsevents/GUIDELINE.md`` defines them. The one place they live.

>>> len(TOPICS), len(INCIDENTS)
(17, 14)
>>> HEADS["incident"][-1]
'none'
"""

from __future__ import annotations

from typing import Final

#: IPTC Media Topics, top level, with their medtop codes (GUIDELINE.md, "Topic").
TOPIC_IPTC: Final[dict[str, str]] = {
    "arts_culture_entertainment_media": "01000000",
    "conflict_war_peace": "16000000",
    "crime_law_justice": "02000000",
    "disaster_accident_emergency": "03000000",
    "economy_business_finance": "04000000",
    "education": "05000000",
    "environment": "06000000",
    "health": "07000000",
    "human_interest": "08000000",
    "labour": "09000000",
    "lifestyle_leisure": "10000000",
    "politics": "11000000",
    "religion": "12000000",
    "science_technology": "13000000",
    "society": "14000000",
    "sport": "15000000",
    "weather": "17000000",
}

TOPICS: Final[tuple[str, ...]] = tuple(TOPIC_IPTC)

#: Incident types (GUIDELINE.md, "Incident"); ``none`` means no specific incident is reported.
INCIDENTS: Final[tuple[str, ...]] = (
    "air_drone_strike",
    "shelling_missile_strike",
    "armed_clash",
    "bombing_explosion",
    "armed_assault",
    "kidnapping_hostage",
    "protest",
    "riot",
    "natural_disaster",
    "accident",
    "crime",
    "cyberattack",
    "disease_outbreak",
    "none",
)

NO_INCIDENT: Final[str] = "none"

#: Head name → its label set. Every bundle predicts exactly these heads.
HEADS: Final[dict[str, tuple[str, ...]]] = {"topic": TOPICS, "incident": INCIDENTS}


def check_label(head: str, label: str) -> str:
    """Return ``label`` if it belongs to ``head``'s label set, else raise ``ValueError``.

    >>> check_label("topic", "sport")
    'sport'
    """
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; expected one of {sorted(HEADS)}")
    if label not in HEADS[head]:
        raise ValueError(f"label {label!r} is not in the {head} taxonomy")
    return label

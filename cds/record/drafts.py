"""Which draft orders of an order hook must be readable: a policy on top of matching.

The draft orders are the point of an order hook, so one the rules could read and that cannot
be read as R4 is refused (400), never skipped in silence. Everything else stays out of the
rules' way, as issue 14 asks ("ignore what the rules do not understand"):

- a draft of a type no rule reads (a DSTU2 MedicationOrder, an R4 NutritionOrder) is ignored:
  the hooks list their order types as not comprehensive;
- a draft whose code fields are well formed is read only when a value set matches them, like
  any resource: the hooks library's "R4" antibiotic order carries an STU3 dosage no rule reads;
- a draft whose code fields are malformed (a string where a CodeableConcept belongs, a coding
  that is not a list of objects) must be readable, since the shape may hide a code a rule is
  about; so must one that is not even a resource (no object, no string resourceType).
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from cds.record.matching import CODE_FIELDS


class DraftReading(Enum):
    """What reading one draft order takes."""

    IGNORE = "a type no rule reads"
    IF_MATCHED = "codes well formed: read only when a value set matches them"
    REQUIRED = "must be readable as R4 whether or not a value set matches it"


def draft_reading(raw: object) -> DraftReading:
    """The reading ``raw`` (one ``draftOrders`` resource, raw JSON) takes."""
    kind = raw.get("resourceType") if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or not isinstance(kind, str):
        return DraftReading.REQUIRED
    fields = CODE_FIELDS.get(kind)
    if fields is None:
        return DraftReading.IGNORE
    if all(_well_formed(raw.get(name)) for name in fields):
        return DraftReading.IF_MATCHED
    return DraftReading.REQUIRED


def _well_formed(concept: Any) -> bool:
    """Absent, or a CodeableConcept-shaped object whose codings (if any) are a list of objects,
    so matching reads its codes as sent."""
    if concept is None:
        return True
    if not isinstance(concept, dict):
        return False
    coding = concept.get("coding", [])
    return isinstance(coding, list) and all(isinstance(c, dict) for c in coding)

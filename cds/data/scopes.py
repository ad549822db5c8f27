"""SMART on FHIR scopes in ``fhirAuthorization.scope`` (R-09): which reads they allow.

CDS Hooks 2.0 names SMART App Launch 1.0 scopes (``user/Patient.read``); 3.0 moves to SMART
STU2 (``patient/Observation.rs``, optionally narrowed by ``?param=value``). Both are read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RESOURCE_SCOPE = re.compile(
    r"^(?:patient|user|system)/(?P<type>[A-Z][A-Za-z]+|\*)\.(?P<perms>read|write|\*|c?r?u?d?s?)"
    r"(?:\?\S*)?$"
)


@dataclass(frozen=True, slots=True)
class Scopes:
    """The resource scopes of one token, as (resource type or ``*``, permissions) pairs."""

    grants: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, scope: str) -> Scopes:
        grants = []
        for token in scope.split():
            match = _RESOURCE_SCOPE.match(token)
            if match is not None and match["perms"]:
                grants.append((match["type"], match["perms"]))
        return cls(tuple(grants))

    def allows(self, resource_type: str, *, search: bool) -> bool:
        """Whether a read (or, with ``search``, a search) of ``resource_type`` is granted.

        A token naming no resource scope at all (``openid``, a vendor's own names) says nothing
        clear, so it allows everything and the FHIR server decides; a grant for a query-narrowed
        scope (``patient/Observation.rs?category=laboratory``) counts, as the server narrows it.
        """
        if not self.grants:
            return True
        wanted = "s" if search else "r"
        for granted_type, perms in self.grants:
            if granted_type not in (resource_type, "*") or perms == "write":
                continue
            if perms in ("read", "*") or wanted in perms:
                return True
        return False


def target_of(relative: str) -> tuple[str, bool]:
    """The resource type a relative FHIR URL reads, and whether it is a search.

    ``Condition?patient=1`` -> ("Condition", True); ``Patient/1`` -> ("Patient", False).
    """
    path, query_mark, _ = relative.lstrip("/").partition("?")
    segments = path.split("/")
    return segments[0], bool(query_mark) or len(segments) == 1

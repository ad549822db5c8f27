"""Whether the data a service is sent can hold a site's local code at all.

A service reads a value set from some resource types (``sets_read``), and the EHR sends it what
the service's prefetch templates ask for. A template without a code filter, or narrowed another
way (``category=laboratory``), may hold any code; one that lists codes holds only those. A local
code of a set read only through code-listing templates that do not list it never reaches the
rules: the site settings cannot widen a template (it is the repository's), so the check says so
as a warning, with what to ask for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cds.catalogue import ServiceDefinition
from cds.rules.code_filters import code_filter, sets_read
from cds.rules.schema import RuleSpec
from cds.site_settings.schema import SiteFile
from cds.valuesets import normalize


def _listed_only(
    prefetch: Mapping[str, str], resource_type: str
) -> dict[str, list[tuple[str, str]]]:
    """The service's templates of ``resource_type``, by key, when every one lists codes."""
    filters = {}
    for key, template in prefetch.items():
        found_type, codes = code_filter(template)
        if found_type != resource_type:
            continue
        if not codes:  # unfiltered (None), or narrowed without naming codes ([])
            return {}
        filters[key] = codes
    return filters


def unreachable_local_codes(
    document: SiteFile, services: Iterable[ServiceDefinition], rules: Mapping[str, RuleSpec]
) -> list[str]:
    """One warning per local code a service reads but its prefetch would never send it."""
    warnings: list[str] = []
    for service in services:
        read = sets_read(service.rules, rules)
        for resource_type, ids in sorted(read.items()):
            filters = _listed_only(service.prefetch, resource_type)
            if not filters:
                continue
            listed = {code for codes in filters.values() for code in codes}
            keys = ", ".join(f"prefetch.{k}" for k in filters)
            warnings.extend(
                f"valuesets.{vs_id}.add[{i}]: local code {c.system}|{c.code} is read by "
                f"{service.id} from {resource_type}, but its {keys} code filter does not list "
                "it, so the query never returns it (from the EHR or the FHIR server); the template "
                "is the repository's to change"
                for vs_id, addition in sorted(document.valuesets.items())
                if vs_id in ids
                for i, c in enumerate(addition.add)
                if (c.system, normalize(c.system, c.code)) not in listed
            )
    return warnings

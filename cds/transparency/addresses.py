"""Where the transparency pages live, for the routes and for the cards that link to them."""

from __future__ import annotations

RULES_PATH = "/rules"
VALUE_SETS_PATH = "/fhir/ValueSet"


def rule_page_url(public_base_url: str, rule_id: str) -> str:
    """The absolute URL of ``rule_id``'s page under ``public_base_url`` (CDS_PUBLIC_BASE_URL)."""
    return f"{public_base_url.rstrip('/')}{RULES_PATH}/{rule_id}"


def value_set_url(public_base_url: str, value_set_id: str) -> str:
    """The canonical URL of a value set: where the service answers it as a FHIR ValueSet."""
    return f"{public_base_url.rstrip('/')}{VALUE_SETS_PATH}/{value_set_id}"

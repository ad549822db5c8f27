"""Card templates (cards/*.yaml) and their rendering into CDS Hooks cards with FHIR suggestions."""

from cds.cards.render import Rendered, render, service_request, stable_uuid
from cds.cards.schema import CardTemplate

__all__ = ["CardTemplate", "Rendered", "render", "service_request", "stable_uuid"]

"""Where a card may send a clinician: https pages of the publishers in cards/link-hosts.yaml."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from cds.cards.schema import CardTemplate
from cds.yaml_files import load_required_document

LINK_HOSTS_FILE = "link-hosts.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LinkHost(_Strict):
    host: str = Field(pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")
    publisher: str = Field(min_length=1)
    refs: list[str] = Field(default_factory=list)


class LinkHosts(_Strict):
    """cards/link-hosts.yaml: the publishers' hosts a card link may name."""

    id: str
    hosts: list[LinkHost] = Field(min_length=1)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(h.host for h in self.hosts)


def load_link_hosts(cards_dir: Path, problems: list[str]) -> LinkHosts | None:
    """The allow-list shipped beside the cards; a problem when it is missing or malformed."""
    return load_required_document(
        cards_dir,
        LINK_HOSTS_FILE,
        LinkHosts,
        problems,
        "the publisher allow-list of card links is missing",
    )


def link_problem(url: str, allowed: frozenset[str]) -> str | None:
    """Why a clinician must not be sent to ``url``; None for a listed publisher's https page."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        return f"'{url}' is not https"
    host = (parts.hostname or "").lower()
    if host not in allowed:
        return f"host '{host}' is not on the publisher allow-list ({LINK_HOSTS_FILE})"
    if parts.netloc.lower() != host:
        # user@host or host:port would name something other than the publisher's page.
        return f"'{url}' names more than the publisher's host"
    return None


def card_link_problems(card: CardTemplate, label: str, allowed: frozenset[str]) -> list[str]:
    """One ``file: path: why`` line per card link outside the allow-list or not over https."""
    urls = [("source.url", card.source.url)]
    urls += [(f"links[{i}].url", link.url) for i, link in enumerate(card.links)]
    problems = []
    for where, url in urls:
        why = link_problem(url, allowed)
        if why is not None:
            problems.append(f"{label}: {where}: {why}")
    return problems

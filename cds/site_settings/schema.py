"""The YAML shape of the site settings file (``CDS_SITE_CONFIG``): what one hospital changes."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from cds.governance.schema import Duration, Mode
from cds.rules.params import PARAM_NAME, ParamValue
from cds.rules.schema import RULE_ID

# A code system is named by an absolute URI (FHIR Coding.system): a hospital's own codes too.
SYSTEM_URI = r"^(https?://[^\s/]+/\S*|urn:(oid|uuid):\S+)$"
_Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


def _mode_word(value: object) -> object:
    # YAML 1.1 reads a bare on / off as true / false: take them back as the words written.
    if isinstance(value, bool):
        return "on" if value else "off"
    return value


class RuleSetting(_Strict):
    """What the site changes about one rule; a key left out keeps the rule as shipped."""

    mode: Annotated[
        Mode | None,
        BeforeValidator(_mode_word),
        Field(json_schema_extra=lambda schema: schema["anyOf"].append({"type": "boolean"})),
    ] = None
    params: dict[Annotated[str, Field(pattern=PARAM_NAME)], ParamValue] = Field(
        default_factory=dict
    )
    # How long an overridden card stays away (weeks, days, hours...: P7D, PT12H), at most the
    # maximum in the rule's governance record.
    snooze: Duration | None = None


class LocalCode(_Strict):
    """A code of the hospital's own added to a value set, with where it comes from."""

    system: str = Field(pattern=SYSTEM_URI)
    code: _Text
    display: _Text
    # Provenance: who mapped it, from what (the lab's catalogue, the problem list), when.
    note: _Text


class ValueSetAddition(_Strict):
    """Codes added to one value set. There is no way to remove one: a verified code stays."""

    add: list[LocalCode] = Field(min_length=1)


class SiteFile(_Strict):
    """The whole site settings file (docs/governance.md#site-settings)."""

    rules: dict[Annotated[str, Field(pattern=RULE_ID)], RuleSetting] = Field(default_factory=dict)
    valuesets: dict[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")], ValueSetAddition] = (
        Field(default_factory=dict)
    )

"""SMART scopes in fhirAuthorization.scope (R-09): v1 and v2 syntax, what each allows."""

from __future__ import annotations

import pytest

from cds.data.scopes import Scopes, target_of


@pytest.mark.parametrize(
    ("scope", "resource_type", "search", "allowed"),
    [
        ("user/Patient.read", "Patient", False, True),
        ("user/Patient.read", "Condition", True, False),
        ("patient/*.read", "Observation", True, True),
        ("system/*.*", "Condition", True, True),
        ("patient/Condition.write", "Condition", True, False),
        ("patient/Condition.rs", "Condition", True, True),
        ("patient/Condition.s", "Condition", False, False),
        ("patient/Condition.r", "Condition", True, False),
        ("patient/Condition.cruds", "Condition", False, True),
        ("patient/Observation.rs?category=vital-signs", "Observation", True, True),
        ("launch/patient openid fhirUser", "Condition", True, True),
        ("patient/Condition.rs openid", "Observation", True, False),
        ("", "Condition", True, True),
    ],
)
def test_a_scope_allows_exactly_the_reads_it_names(
    scope: str, resource_type: str, search: bool, allowed: bool
) -> None:
    assert Scopes.parse(scope).allows(resource_type, search=search) is allowed


def test_malformed_resource_scopes_grant_nothing_and_say_nothing() -> None:
    assert (
        Scopes.parse("patient/condition.read patient/Condition.sr patient/Condition.").grants == ()
    )


@pytest.mark.parametrize(
    ("relative", "target"),
    [
        ("Condition?patient=p1", ("Condition", True)),
        ("Patient/p1", ("Patient", False)),
        ("/Observation?code=x|1", ("Observation", True)),
        ("Observation", ("Observation", True)),
    ],
)
def test_a_relative_url_names_what_it_reads(relative: str, target: tuple[str, bool]) -> None:
    assert target_of(relative) == target

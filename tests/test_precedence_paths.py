"""Precedence decided in two steps (which rules are suppressed, from the rules that fired, before
any card's suggestions are worked out; then each kind's owner, from one pass over the cards)
shows the same cards with the same suggestions as applying the service's precedence to every
fired card at once, owner by owner."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from cds.cards.schema import SuggestionSpec
from cds.engine import _Fired, _one_per_kind, _unsuppressed
from cds.rules import RuleSpec
from cds.rules.logic import FALSE
from cds.rules.schema import Owner, Suppression

RULES = [
    RuleSpec.model_validate(
        {"id": rule_id, "name": rule_id, "card": "x", "when": {"patient": {"minAge": 1}}}
    )
    for rule_id in ("AA-01", "AA-02", "BB-01", "BB-02", "CC-01", "CC-02")
]
IDS = [rule.id for rule in RULES]
KINDS = ["edx", "pt", "mri", None]


def _suggestion(key: str, kind: str | None) -> SuggestionSpec:
    return SuggestionSpec.model_construct(key=key, kind=kind, label=key, actions=[])


cards = st.lists(
    st.tuples(st.sampled_from(range(len(RULES))), st.lists(st.sampled_from(KINDS), max_size=4)),
    max_size=6,
    unique_by=lambda card: card[0],
)
owners = st.lists(
    st.builds(
        lambda kind, ranked, drop: Owner.model_validate(
            {"kind": kind, "priority": ranked, "dropEmptyCards": drop}
        ),
        st.sampled_from(KINDS[:-1]),
        st.lists(st.sampled_from(IDS), min_size=1, max_size=4, unique=True),
        st.booleans(),
    ),
    max_size=5,
)
suppressions = st.lists(
    st.builds(
        lambda if_, then: Suppression.model_validate({"if": if_, "then": then}),
        st.lists(st.sampled_from(IDS), min_size=1, max_size=3),
        st.lists(st.sampled_from(IDS), min_size=1, max_size=3),
    ),
    max_size=3,
)


def _fired(chosen: Sequence[tuple[int, list[str | None]]]) -> list[_Fired]:
    return [
        _Fired(
            RULES[rule],
            FALSE,
            "info",
            [_suggestion(f"s{i}", kind) for i, kind in enumerate(kinds)],
            [],
            None,
            order,
        )
        for order, (rule, kinds) in enumerate(chosen)
    ]


def _at_once(
    suppress: Sequence[Suppression], owned: Sequence[Owner], fired: list[_Fired]
) -> list[_Fired]:
    """The service's precedence as it reads: suppression among the fired cards, then each
    owner in turn over the cards that still hold its kind."""
    ids = {f.rule.id for f in fired}
    suppressed = {rule for sup in suppress if not ids.isdisjoint(sup.if_) for rule in sup.then}
    kept = [f for f in fired if f.rule.id not in suppressed]
    dropped: set[str] = set()
    for owner in owned:
        holders = [f for f in kept if any(s.kind == owner.kind for s in f.suggestions)]
        holders.sort(key=lambda f: owner.rank.get(f.rule.id, len(owner.rank)))
        for loser in holders[1:]:
            loser.suggestions = [s for s in loser.suggestions if s.kind != owner.kind]
            if owner.drop_empty_cards and not loser.suggestions:
                dropped.add(loser.rule.key)
    return [f for f in kept if f.rule.key not in dropped]


def _in_two_steps(
    suppress: Sequence[Suppression], owned: Sequence[Owner], fired: list[_Fired]
) -> list[_Fired]:
    triggered = [(f.order, f.rule, f.result) for f in fired]
    unsuppressed = {order for order, _, _ in _unsuppressed(suppress, triggered)}
    return _one_per_kind(owned, [f for f in fired if f.order in unsuppressed])


def _shown(fired: list[_Fired]) -> list[tuple[str, list[str]]]:
    return [(f.rule.id, [s.key for s in f.suggestions]) for f in fired]


@given(cards, owners, suppressions)
def test_two_steps_show_what_the_precedence_shows_at_once(
    chosen: list[tuple[int, list[str | None]]],
    owned: list[Owner],
    suppress: list[Suppression],
) -> None:
    assert _shown(_in_two_steps(suppress, owned, _fired(chosen))) == _shown(
        _at_once(suppress, owned, _fired(chosen))
    )


def test_a_second_owner_of_a_kind_ranks_only_the_card_the_first_left_holding_it() -> None:
    # The first owner leaves the kind on CC-01; the second would rank AA-01 first, but AA-01
    # no longer holds the kind, so CC-01 keeps it.
    first = Owner.model_validate({"kind": "pt", "priority": ["CC-01", "AA-01"]})
    second = Owner.model_validate({"kind": "pt", "priority": ["AA-01", "CC-01"]})
    fired = _fired([(0, ["pt", "mri"]), (4, ["pt"])])
    shown = _one_per_kind([first, second], fired)
    assert _shown(shown) == [("AA-01", ["s1"]), ("CC-01", ["s0"])]


def test_a_suppressed_rule_is_left_out_before_its_suggestions_are_worked_out() -> None:
    suppress = [Suppression.model_validate({"if": ["AA-01"], "then": ["BB-01"]})]
    triggered = [(0, RULES[0], FALSE), (1, RULES[2], FALSE)]
    assert [rule.id for _, rule, _ in _unsuppressed(suppress, triggered)] == ["AA-01"]

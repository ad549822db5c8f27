"""A clause's Result is a frozen value: its own constructor (slots set directly, for speed)
gives what the dataclass's would, and nothing can change a result once made."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from cds.rules.logic import FALSE, UNKNOWN, Result, Tri


def test_a_result_made_with_defaults_holds_no_evidence_and_no_notes() -> None:
    result = Result(Tri.TRUE)
    assert (result.truth, result.evidence, result.notes) == (Tri.TRUE, (), ())
    assert result.true


def test_arguments_by_position_and_by_name_make_equal_results_with_equal_hashes() -> None:
    by_position = Result(Tri.TRUE, (), ("3 kg lost",))
    by_name = Result(notes=("3 kg lost",), truth=Tri.TRUE)
    assert by_position == by_name
    assert hash(by_position) == hash(by_name)
    assert Result(Tri.FALSE) == FALSE
    assert Result(Tri.UNKNOWN) == UNKNOWN
    assert Result(Tri.TRUE) != Result(Tri.TRUE, (), ("a note",))


def test_a_result_cannot_be_changed_once_made() -> None:
    result = Result(Tri.TRUE, (), ("note",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.truth = Tri.FALSE  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del result.notes
    assert result.truth is Tri.TRUE


def test_a_result_copies_replaces_and_pickles_as_the_dataclass_it_is() -> None:
    result = Result(Tri.TRUE, (), ("note",))
    assert dataclasses.replace(result, truth=Tri.UNKNOWN) == Result(Tri.UNKNOWN, (), ("note",))
    assert pickle.loads(pickle.dumps(result)) == result  # noqa: S301 - our own bytes
    assert dataclasses.astuple(result) == (Tri.TRUE, (), ("note",))
    assert repr(result) == ("Result(truth=<Tri.TRUE: 'true'>, evidence=(), notes=('note',))")


def test_a_result_is_made_from_its_arguments_not_shared_defaults() -> None:
    notes = ("first",)
    assert Result(Tri.TRUE, (), notes).notes is notes
    with pytest.raises(TypeError):
        Result()  # type: ignore[call-arg]

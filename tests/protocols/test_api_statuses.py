"""The merchant API's status codes: what each outcome and refusal of a use case is answered with
(spec/merchant-api.md)."""

from __future__ import annotations

from gateway.errors import FieldError, InvalidRequest, Refusal
from gateway.model import Outcome, StoredResponse
from gateway.protocols.api.http import Response, problem_for
from gateway.protocols.api.statuses import STATUS


def test_every_outcome_and_refusal_has_its_status() -> None:
    assert {kind: STATUS[kind] for kind in [*Outcome, *Refusal]} == {
        Outcome.DONE: 200,
        Outcome.CREATED: 201,
        Outcome.ACCEPTED: 202,
        Refusal.MALFORMED: 400,
        Refusal.TOO_LARGE: 413,
        Refusal.UNSUPPORTED_ENCODING: 415,
        Refusal.INVALID: 422,
    }


def test_a_replay_is_answered_with_the_first_answers_status_and_says_so() -> None:
    first = Response.stored(StoredResponse(Outcome.CREATED, '{"a":1}'))
    replay = Response.stored(StoredResponse(Outcome.CREATED, '{"a":1}', replayed=True))
    assert (first.status, first.body, first.headers) == (201, b'{"a":1}', {})
    assert (replay.status, replay.body, replay.headers) == (
        201,
        b'{"a":1}',
        {"Idempotent-Replayed": "true"},
    )


def test_a_refusal_is_a_problem_with_its_status() -> None:
    error = InvalidRequest([FieldError("amount", "must be 1 or more")])
    problem = problem_for(error)
    assert problem is not None
    assert (problem.status, problem.title, problem.detail) == (
        422,
        "The request has invalid fields",
        "amount: must be 1 or more",
    )
    malformed = problem_for(InvalidRequest([FieldError("x", "unknown field")], Refusal.MALFORMED))
    assert malformed is not None and malformed.status == 400

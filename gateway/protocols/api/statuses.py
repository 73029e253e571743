"""The merchant API's status code for what a use case did or why it refused: the one table.

The use cases say what happened (:class:`gateway.model.Outcome`) or why a request is refused
(:class:`gateway.errors.Refusal`); only the API speaks HTTP. A replayed answer (an
Idempotency-Key seen before) has the outcome of the first one, so the same status.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.errors import Refusal
from gateway.model import Outcome

STATUS: Mapping[Outcome | Refusal, int] = {
    Outcome.DONE: 200,
    Outcome.CREATED: 201,
    Outcome.ACCEPTED: 202,
    Refusal.MALFORMED: 400,
    Refusal.TOO_LARGE: 413,
    Refusal.UNSUPPORTED_ENCODING: 415,
    Refusal.INVALID: 422,
}

"""Reading an event request's body (docs/webhooks.md §8) into its typed model.

The models are the platform's own (``contract._events``): what the platform validates before
it publishes is what the receiver reads.  Unknown fields are ignored (a newer platform may add
some); a type this version does not know arrives as :class:`UnknownEvent`, so a receiver
subscribed to ``*`` keeps working when types are added.
"""

from __future__ import annotations

import re
from typing import Final

from pydantic import ValidationError
from pydantic_core import from_json

from .._exceptions import FieldError
from ..contract._events import (
    EVENT_ID_PATTERN,
    EVENT_MODELS,
    Event,
    UnknownEvent,
    field_path,
    problem_text,
)
from ._parse import InvalidRequest

_EVENT_ID: Final = re.compile(EVENT_ID_PATTERN)
#: Problems listed in one 422; the rest are counted.
_MAX_PROBLEMS: Final = 50


def parse_event(body: bytes) -> Event | UnknownEvent:
    """The verified body as its event type's model (``UnknownEvent`` for a type not known).

    Raises :class:`InvalidRequest` naming every broken field (``data.items[0].unit_price:
    must have at most 4 decimal places``): answer 422.  Verify the request first: this reads
    the body, it proves nothing about who sent it.
    """
    try:
        document = from_json(bytes(body), allow_inf_nan=False)
    except ValueError:
        raise InvalidRequest([FieldError("body", "is not valid JSON")]) from None
    if not isinstance(document, dict):
        raise InvalidRequest([FieldError("body", "must be a JSON object")])
    event_type = document.get("event")
    model: type[Event | UnknownEvent] = UnknownEvent
    if isinstance(event_type, str) and event_type in EVENT_MODELS:
        model = EVENT_MODELS[event_type]
    try:
        return model.model_validate(document)
    except ValidationError as error:
        problems = [
            FieldError(field_path(problem["loc"], root=""), problem_text(dict(problem)))
            for problem in error.errors(include_url=False, include_input=False)
        ]
        if len(problems) > _MAX_PROBLEMS:
            more = len(problems) - _MAX_PROBLEMS
            problems = [*problems[:_MAX_PROBLEMS], FieldError("body", f"... {more} more problems")]
        raise InvalidRequest(problems) from None


def event_id_is_valid(value: object) -> bool:
    """Whether ``value`` has an event id's form (``evt_`` then letters, digits, ``_``, ``-``)."""
    return isinstance(value, str) and _EVENT_ID.fullmatch(value) is not None

"""Reading untrusted JSON objects field by field, collecting every error with its path."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from gateway.errors import FieldError, InvalidRequest, Refusal

_MISSING: Any = object()
DATE = r"\d{4}-\d{2}-\d{2}"  # a date field (Fields.day): read by the OpenAPI document too
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

#: A biller id, as ``gateway-admin biller create`` accepts it and the API's paths check it.
BILLER_ID = r"[a-z0-9][a-z0-9_\-]{0,31}"


class Fields:
    """Typed getters over one JSON object. Type errors (400) and rule errors (422) are
    collected, not raised one at a time, so the caller hears about every bad field at once."""

    def __init__(
        self,
        raw: object,
        path: str = "",
        errors: list[FieldError] | None = None,
        malformed: list[FieldError] | None = None,
    ) -> None:
        self.path = path
        self.errors: list[FieldError] = [] if errors is None else errors  # 422
        self.malformed: list[FieldError] = [] if malformed is None else malformed  # 400
        self.seen: set[str] = set()
        if isinstance(raw, Mapping):
            self.raw: Mapping[str, Any] = raw
        else:
            self.raw = {}
            self.malformed.append(FieldError(path or "body", "must be a JSON object"))

    def name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def bad(self, key: str, message: str) -> None:
        self.errors.append(FieldError(self.name(key), message))

    def _get(self, key: str, kinds: tuple[type, ...], what: str, required: bool) -> Any:
        self.seen.add(key)
        value = self.raw.get(key, _MISSING)
        if value is _MISSING or value is None:
            if required:
                self.malformed.append(FieldError(self.name(key), "is required"))
            return _MISSING
        if isinstance(value, bool) and bool not in kinds:
            self.malformed.append(FieldError(self.name(key), f"must be {what}, not a boolean"))
            return _MISSING
        if not isinstance(value, kinds):
            self.malformed.append(FieldError(self.name(key), f"must be {what}"))
            return _MISSING
        return value

    def string(
        self,
        key: str,
        *,
        required: bool = False,
        max_len: int = 255,
        min_len: int = 1,
        pattern: str | None = None,
        hint: str = "",
    ) -> str | None:
        value = self._get(key, (str,), "a string", required)
        if value is _MISSING:
            return None
        if not min_len <= len(value) <= max_len:
            self.bad(key, f"must be {min_len} to {max_len} characters long")
            return None
        if _CONTROL.search(value):
            self.bad(key, "must not contain control characters")
            return None
        if pattern is not None and not re.fullmatch(pattern, value):
            self.bad(key, f"must be {hint or 'in the documented format'}")
            return None
        return str(value)

    def integer(
        self, key: str, *, required: bool = False, low: int | None = None, high: int | None = None
    ) -> int | None:
        value = self._get(key, (int, float), "an integer", required)
        if value is _MISSING:
            return None
        if isinstance(value, float):
            # JSON has one number type: 5400.0 is the integer 5400 (as JSON Schema says);
            # 5400.5 is not an amount of yen.
            if not value.is_integer() or abs(value) > 2**53:
                self.malformed.append(FieldError(self.name(key), "must be an integer"))
                return None
            value = int(value)
        if (low is not None and value < low) or (high is not None and value > high):
            self.bad(key, f"must be between {low} and {high}")
            return None
        return int(value)

    def boolean(self, key: str, *, required: bool = False) -> bool | None:
        value = self._get(key, (bool,), "true or false", required)
        return None if value is _MISSING else bool(value)

    def day(self, key: str, *, required: bool = False) -> date | None:
        value = self.string(
            key,
            required=required,
            max_len=10,
            pattern=DATE,
            hint="a date YYYY-MM-DD",
        )
        if value is None:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.bad(key, f"{value} is not a calendar date")
            return None

    def string_list(self, key: str, *, required: bool = False) -> list[str] | None:
        value = self._get(key, (list,), "an array of strings", required)
        if value is _MISSING:
            return None
        if not all(isinstance(v, str) for v in value):
            self.malformed.append(FieldError(self.name(key), "must be an array of strings"))
            return None
        return list(value)

    def obj(self, key: str, *, required: bool = False) -> Fields | None:
        value = self._get(key, (Mapping,), "an object", required)
        if value is _MISSING:
            return None
        return Fields(value, self.name(key), self.errors, self.malformed)

    def finish(self) -> None:
        """Name every unknown key, then raise if anything was wrong."""
        for key in self.raw:
            if key not in self.seen:
                self.malformed.append(FieldError(self.name(key), "unknown field"))

    def raise_if_invalid(self) -> None:
        if self.malformed:
            raise InvalidRequest(
                self.malformed + self.errors, Refusal.MALFORMED, title="The request is malformed"
            )
        if self.errors:
            raise InvalidRequest(self.errors)


def parse_timestamp(value: str, field: str) -> datetime:
    """An ISO 8601 timestamp with its offset; a naive one is refused."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(
            [FieldError(field, "must be an ISO 8601 timestamp")], Refusal.MALFORMED
        ) from None
    if parsed.tzinfo is None:
        raise InvalidRequest(
            [FieldError(field, "must include a time zone offset")], Refusal.MALFORMED
        )
    return parsed

"""Errors that carry their HTTP meaning, and the JSON body every error answer uses."""

from __future__ import annotations

import json


class HttpError(Exception):
    """An error a client should see: `status` and a message that names the problem."""

    status = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class NotFound(HttpError):
    status = 404


class PermanentEventError(HttpError):
    """The event can never be processed: answered 422, so the broker dead-letters it at once."""

    status = 422


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()

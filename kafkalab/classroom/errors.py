"""What classroom services refuse, with the message the person sees and the HTTP status it gets."""

from __future__ import annotations


class ClassroomError(Exception):
    """A refusal with a message for the person who asked."""

    status = 409

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class JoinRefused(ClassroomError):
    """A join (or rejoin) that cannot go ahead: wrong code, full or closed classroom, name taken."""

    status = 422

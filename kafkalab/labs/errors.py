"""What lab services raise when they refuse or fail; the message is for the learner."""

from __future__ import annotations


class LabError(Exception):
    """An operation was refused or failed; nothing was half done. The message says why."""


class LabLimitReached(LabError):
    """A cap was reached (labs, consumers, produce rate); the message names it."""

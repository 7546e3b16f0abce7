"""Errors of the compliance package.

The tree::

    SmtError                         (root of every product error; in mpc.errors)
    +-- ComplianceError              anything the compliance store refuses
        +-- NotFoundError            no subject / request / run with that id
        +-- InvalidTransitionError   a request event not allowed in its current status
        +-- ConcurrentUpdateError    another worker changed the request first
        +-- ErasureIncompleteError   a scan after erasure still found the subject somewhere
        +-- IncompleteBreachError    a breach notice lacks what the law requires it to say
                                     (in compliance.breach_checks)

Messages say what went wrong and what to do; they never contain personal data beyond the
pseudonymous ids the caller already holds.
"""

from __future__ import annotations

from mpc.errors import SmtError


class ComplianceError(SmtError):
    """The compliance store refused an operation."""


class NotFoundError(ComplianceError):
    """No row with the given id."""


class InvalidTransitionError(ComplianceError):
    """The event is not allowed for the request's current status (see ``TRANSITIONS``)."""


class ConcurrentUpdateError(ComplianceError):
    """Another worker changed the request between our read and our write."""


class ErasureIncompleteError(ComplianceError):
    """The post-erasure scan still found rows of the subject."""

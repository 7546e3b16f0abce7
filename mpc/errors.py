"""Errors of the secure engine.

The tree::

    SmtError                      (root of every error the product raises; in mpc.errors)
    +-- ConfigurationError        bad model directory, weights that do not match the config
    +-- InputError                empty text, text over the maximum length, bad batch
    +-- ProtocolError             parties disagree (shapes, config), a value left its valid range
    |   +-- TransportError        a link failed: refused, closed, timed out, malformed frame
    |   |   +-- IdentityError     a peer did not prove the identity pinned for its role
    |   +-- DealerRequestError    a request to the dealer outside its allow-list or size limits
    |   +-- InsecureRandomness    a secret value was about to come from a non-cryptographic generator
    +-- PartyFailure              a party process exited non-zero, was killed, or timed out

Every message says what went wrong, where, and what to do about it.
"""

from __future__ import annotations


class SmtError(Exception):
    """Root of every error raised by Secure MPC Transformer."""


class ConfigurationError(SmtError):
    """A model directory, configuration or setting is unusable."""


class InputError(SmtError):
    """An input (text, batch, option) is invalid."""


class ProtocolError(SmtError):
    """The parties disagree or a secure computation left its valid range."""


class PartyFailure(SmtError):
    """A party of an MPC session failed; the message names it and shows its last log lines."""

    def __init__(self, message: str, *, party: str, returncode: int | None, log_tail: str):
        super().__init__(message)
        self.party = party
        self.returncode = returncode
        self.log_tail = log_tail


class TransportError(ProtocolError):
    """A link of the session failed: refused, closed, timed out or sent a malformed frame."""


class IdentityError(TransportError):
    """A peer did not prove the identity configured (pinned) for its role."""


class DealerRequestError(ProtocolError):
    """Party 0 sent the dealer a request outside the allow-list or its limits."""


class InsecureRandomness(ProtocolError):
    """A secret value was about to come from a generator not keyed from the OS's CSPRNG."""


class ServiceRefused(TransportError):
    """A party service refused a request (``code``: busy, draining, unknown-session, not-allowed,
    bad-request, wrong-model); the message names the service's endpoint and the reason."""

    def __init__(self, message: str, *, code: str = "refused"):
        super().__init__(message)
        self.code = code

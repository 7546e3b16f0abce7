"""The interface the inference flow's compliance gate reads.

The inference flow asks, for a set of pseudonymous subject ids and a processing purpose, which
subjects may be processed.  The SQL-backed implementation lives in the compliance store
(``compliance.store``); this module holds only the contract so that flows depend on it, not on
the store.

Policies:
- ``default``: process unless the subject withdrew consent for the purpose, objected, or has
  processing restricted.
- ``strict``: process only subjects with a recorded, unwithdrawn consent for the purpose (and no
  objection or restriction).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, Protocol

Policy = Literal["default", "strict"]
PURPOSE_SECURE_INFERENCE = "secure_inference"


class ExclusionReason(StrEnum):
    CONSENT_WITHDRAWN = "consent_withdrawn"
    NO_CONSENT = "no_consent"  # strict policy only
    OBJECTED = "objected"
    RESTRICTED = "restricted"


@dataclass(frozen=True, kw_only=True)
class GateDecision:
    subject_id: str
    allowed: bool
    reason: ExclusionReason | None = None


class ConsentGate(Protocol):
    def decide(
        self, subject_ids: Iterable[str], *, purpose: str, policy: Policy = "default"
    ) -> dict[str, GateDecision]:
        """Return one decision per distinct subject id."""
        ...

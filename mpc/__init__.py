"""The secure engine: a BERT-family encoder on CrypTen shares, parties as OS processes.

No Prefect imports here.  Entry points: ``run_inference`` (one session on loopback),
``mpc.party`` (one party, any host), ``mpc.launcher.launch`` (any job across parties).
"""

from mpc.api import InferenceResult, run_inference
from mpc.errors import ConfigurationError, InputError, PartyFailure, ProtocolError, SmtError

__all__ = [
    "ConfigurationError", "InferenceResult", "InputError", "PartyFailure", "ProtocolError",
    "SmtError", "run_inference",
]  # fmt: skip

"""The secure engine: a BERT-family encoder on CrypTen shares, parties as OS processes.

No Prefect imports here.  Entry points: ``run_inference`` (one session on loopback),
``mpc.party`` (one party, any host), ``mpc.launcher.launch`` (any job across parties).
Imports are lazy so that ``mpc.errors`` costs nothing (compliance commands use it).
"""

from mpc.errors import ConfigurationError, InputError, PartyFailure, ProtocolError, SmtError

__all__ = [
    "ConfigurationError", "InferenceResult", "InputError", "PartyFailure", "ProtocolError",
    "SmtError", "run_inference", "run_inference_batched",
]  # fmt: skip


def __getattr__(name: str):
    if name in ("run_inference", "run_inference_batched", "InferenceResult"):
        from mpc import api

        return getattr(api, name)
    raise AttributeError(f"module 'mpc' has no attribute {name!r}")

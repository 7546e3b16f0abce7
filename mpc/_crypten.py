"""The only module that imports CrypTen.

CrypTen 0.4.1 imports ``torch.onnx._internal.registration``, which torch 2.13 moved to
``torch.onnx._internal.torchscript_exporter.registration``; we register the new module under
the old name before the first ``import crypten`` (see shared/FACTS.md).
"""

from __future__ import annotations

import importlib
import sys


def _install_torch_onnx_shim() -> None:
    old = "torch.onnx._internal.registration"
    if old in sys.modules:
        return
    try:
        importlib.import_module(old)
        return
    except ImportError:
        pass
    try:
        new = importlib.import_module("torch.onnx._internal.torchscript_exporter.registration")
    except ImportError:  # other torch versions: CrypTen needs it only for ONNX import
        import types

        new = types.ModuleType(old)
    sys.modules[old] = new


_install_torch_onnx_shim()

import crypten  # noqa: E402
import crypten.communicator as comm  # noqa: E402
from crypten.mpc.primitives.arithmetic import ArithmeticSharedTensor  # noqa: E402
from crypten.mpc.provider import ttp_provider  # noqa: E402

from mpc import prg, tls_backend  # noqa: E402

prg.install()  # every secret random value from AES-CTR keyed by the OS's CSPRNG (mpc/prg.py)
tls_backend.install()  # torch.distributed over mutually authenticated TLS 1.3 (mpc/tls_backend.py)

__all__ = ["crypten", "comm", "ArithmeticSharedTensor", "ttp_provider"]

"""Every secret random value of a session: AES-256-CTR keyed with 256 bits from the OS.

CrypTen draws its seeds from ``torch.randint`` / ``os.urandom(8)`` and expands them with
torch's generators: Mersenne Twister on CPU (its state follows from 32 bits of seed: from its
own dealer seed a party finds the other's in ~90 CPU-seconds, shared/FACTS.md) and Philox on
CUDA.  Here instead:

* **keys** come only from ``secrets.token_bytes(32)`` (the OS's CSPRNG): the dealer's key for
  each party, each party's key shared with its next neighbour, the computing parties' common
  ("global") key, every party's local key.  ``install()`` replaces CrypTen's ``_setup_prng``
  and the TTP provider's seed set-up with ones that exchange such keys (over the TLS links);
* **streams**: a generator object is only a handle; the key bound to it (``keyed_generator``)
  drives an AES-256-CTR keystream (OpenSSL through ``cryptography``).  Both holders of a key
  derive the same stream, draw for draw.  CUDA generators get their own key (derived with
  HKDF-SHA256, label ``cuda``) and their values are made on the CPU and moved;
* **no fallback**: a generator without a bound key raises ``InsecureRandomness`` instead of
  producing values, and ``forbid_torch_random()`` (on in every party process) makes torch's
  random functions, ``manual_seed`` and in-place samplers raise, so a regression that draws a
  secret from torch fails loudly (tests/mpc/test_randomness.py).

Uniform integers below a bound (the comparison's multipliers, rotations, masks, Z_67 shares)
are exact rejection samples on keystream bytes for bounds up to 256 (the draw is a function of
the stream, so two holders of a key stay in step as long as they make the same calls), and
64-bit words reduced mod the bound above that (statistical distance below bound / 2^64).
"""

from __future__ import annotations

import contextlib
import functools
import math
import secrets
import threading
import weakref
from collections.abc import Iterator

import numpy as np
import torch
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mpc.errors import InsecureRandomness

KEY_BYTES = 32
_Generator = torch.Generator  # the real class, kept before forbid_torch_random() swaps it
_KEYS: dict[int, tuple[weakref.ref, bytes, object]] = {}  # id(generator) -> (ref, key, AES encryptor)
_LOCK = threading.Lock()
_ZEROS = bytearray()


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def derive(key: bytes, label: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=b"smt-prg:" + label.encode()).derive(key)


def keyed_generator(key: bytes, device="cpu") -> torch.Generator:
    """A generator handle whose values are the AES-256-CTR keystream of ``key``."""
    if len(key) < 16:
        raise InsecureRandomness(f"a PRG key needs at least 128 bits (got {8 * len(key)})")
    device = torch.device(device)
    gen = _Generator(device=device)
    if device.type == "cuda":
        key = derive(key, "cuda")
    enc = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    gid = id(gen)

    def forget(_ref, gid=gid) -> None:  # the generator is gone: drop its key
        with _LOCK:
            hit = _KEYS.get(gid)
            if hit is not None and hit[0]() is None:
                del _KEYS[gid]

    with _LOCK:
        _KEYS[gid] = (weakref.ref(gen, forget), key, enc)
    return gen


def is_keyed(gen) -> bool:
    hit = _KEYS.get(id(gen))
    return hit is not None and hit[0]() is gen


def _encryptor(gen):
    hit = _KEYS.get(id(gen))
    if hit is None or hit[0]() is not gen:
        raise InsecureRandomness(
            "a secret value was requested from a generator that is not keyed from the OS's CSPRNG "
            "(a torch generator?); use mpc.prg.keyed_generator"
        )
    return hit[2]


def random_bytes(nbytes: int, gen) -> np.ndarray:
    """The next ``nbytes`` of ``gen``'s keystream (uint8)."""
    global _ZEROS
    if len(_ZEROS) < nbytes:
        _ZEROS = bytearray(max(nbytes, 2 * len(_ZEROS)))
    out = np.empty(nbytes + 16, dtype=np.uint8)  # update_into wants block_size - 1 spare bytes
    _encryptor(gen).update_into(memoryview(_ZEROS)[:nbytes], out)
    return out[:nbytes]


def _shape(size) -> tuple[int, ...]:
    if isinstance(size, int):
        return (size,)
    return tuple(int(s) for s in size)


def random_ring(size, gen, device=None) -> torch.Tensor:
    """Uniform elements of Z_2^64 (as int64) of shape ``size``, the next ones of ``gen``'s stream."""
    shape = _shape(size)
    words = torch.from_numpy(random_bytes(8 * math.prod(shape), gen).view(np.int64)).reshape(shape)
    dev = torch.device(device) if device is not None else gen.device
    return words if dev.type == "cpu" else words.to(dev)


_TABLES: dict[tuple[int, object], np.ndarray] = {}


def _small_below(count: int, bound: int, gen, np_dtype) -> np.ndarray:
    """``count`` exactly uniform values in [0, bound <= 256) by rejection on keystream bytes:
    a byte b < limit = bound * floor(256 / bound) gives b mod bound, others are skipped.  The
    draw is a deterministic function of the stream, so both holders of a key stay in step."""
    limit = bound * (256 // bound)
    key = (bound, np_dtype)
    table = _TABLES.get(key)
    if table is None:
        table = _TABLES[key] = (np.arange(256) % bound).astype(np_dtype)
    out = np.empty(count, dtype=np_dtype)
    filled = 0
    while filled < count:
        want = count - filled
        raw = random_bytes(int(want * 256 / limit * 1.02) + 64, gen)
        kept = raw[raw < limit] if limit < 256 else raw
        take = kept[:want]
        out[filled : filled + take.size] = table[take]
        filled += take.size
    return out


def random_below(size, bound: int, gen, device=None, dtype=torch.int64) -> torch.Tensor:
    """Uniform integers in [0, bound): exactly uniform for bound <= 256 (rejection sampling on
    bytes, ~1.3 keystream bytes per value), else 64-bit words mod bound (statistical distance
    below bound / 2^64 per value)."""
    if not 1 <= bound < 2**62:
        raise ValueError(f"bound must be in [1, 2^62), got {bound}")
    shape = _shape(size)
    n = math.prod(shape)
    if bound <= 256:
        np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
        vals = torch.from_numpy(_small_below(n, bound, gen, np_dtype)).reshape(shape)
        dev = torch.device(device) if device is not None else gen.device
        return vals if dev.type == "cpu" else vals.to(dev)
    words = random_bytes(8 * n, gen).view(np.uint64)
    vals = torch.from_numpy((words % np.uint64(bound)).astype(np.int64)).reshape(shape).to(dtype)
    dev = torch.device(device) if device is not None else gen.device
    return vals if dev.type == "cpu" else vals.to(dev)


def random_kbit(size, bitlength: int | None, gen, device=None) -> torch.Tensor:
    """Uniform ``bitlength``-bit values (CrypTen's binary shares); 64 bits when None."""
    v = random_ring(size, gen, device)
    if bitlength is None or bitlength >= 64:
        return v
    return v & ((1 << bitlength) - 1)


# ------------------------------------------------------------------------------------------
# torch's generators are forbidden in party processes


_FORBIDDEN_FUNCS = ("rand", "randn", "randint", "randperm", "rand_like", "randn_like", "randint_like",
                    "bernoulli", "multinomial", "normal", "poisson", "manual_seed", "seed")  # fmt: skip
_FORBIDDEN_METHODS = ("random_", "uniform_", "normal_", "bernoulli_", "exponential_", "geometric_",
                      "cauchy_", "log_normal_", "bernoulli", "multinomial")  # fmt: skip
_SAVED: dict = {}


def _refuse(name: str):
    def refuse(*args, **kwargs):
        raise InsecureRandomness(
            f"torch.{name} was called in a party process; secret randomness must come from "
            f"mpc.prg (AES-CTR keyed from the OS), never from torch's generators"
        )
    return refuse


class _GuardedGenerator(_Generator):
    def manual_seed(self, seed):  # type: ignore[override]  # the guard itself: it only raises
        raise InsecureRandomness("torch.Generator.manual_seed was called in a party process; "
                                 "use mpc.prg.keyed_generator")  # fmt: skip

    def seed(self):  # type: ignore[override]
        raise InsecureRandomness("torch.Generator.seed was called in a party process")


def forbid_torch_random() -> None:
    """From now on in this process, torch's random functions raise InsecureRandomness."""
    if _SAVED:
        return
    for name in _FORBIDDEN_FUNCS:
        _SAVED[("torch", name)] = getattr(torch, name)
        setattr(torch, name, _refuse(name))
    for name in ("manual_seed", "seed"):
        _SAVED[("torch.random", name)] = getattr(torch.random, name)
        setattr(torch.random, name, _refuse(f"random.{name}"))
    for name in _FORBIDDEN_METHODS:
        _SAVED[("Tensor", name)] = getattr(torch.Tensor, name)
        setattr(torch.Tensor, name, _refuse(f"Tensor.{name}"))
    _SAVED[("torch", "Generator")] = torch.Generator
    torch.Generator = _GuardedGenerator  # type: ignore[misc]


def allow_torch_random() -> None:
    """Undo ``forbid_torch_random`` (tests)."""
    for (where, name), fn in _SAVED.items():
        target = {"torch": torch, "torch.random": torch.random, "Tensor": torch.Tensor}[where]
        setattr(target, name, fn)
    _SAVED.clear()


@contextlib.contextmanager
def torch_random_forbidden() -> Iterator[None]:
    forbid_torch_random()
    try:
        yield
    finally:
        allow_torch_random()


# ------------------------------------------------------------------------------------------
# CrypTen: keys instead of seeds


def _setup_prng_keys() -> None:
    """Replacement of ``crypten._setup_prng``: 256-bit keys exchanged over the (TLS) links.

    "next" is this party's key, sent to the next party, whose "prev" it becomes; "global" is
    party 0's key, broadcast to the computing parties only (the dealer is not in main_group);
    "local" never leaves the process."""
    import crypten
    import crypten.communicator as comm

    c = comm.get()
    world, rank = c.get_world_size(), c.get_rank()
    next_key, local_key, global_key = new_key(), new_key(), new_key()
    if world >= 2:
        nxt, prv = (rank + 1) % world, (rank - 1) % world
        mine = torch.from_numpy(np.frombuffer(next_key, dtype=np.int64).copy())
        theirs = torch.zeros(KEY_BYTES // 8, dtype=torch.int64)
        req0 = c.isend(mine, nxt)
        req1 = c.irecv(theirs, src=prv)
        req0.wait()
        req1.wait()
        prev_key = theirs.numpy().tobytes()
        g = torch.from_numpy(np.frombuffer(global_key, dtype=np.int64).copy())
        global_key = c.broadcast(g, 0).numpy().tobytes()
    else:
        prev_key = next_key
    keys = {"prev": prev_key, "next": next_key, "local": local_key, "global": global_key}
    cuda = [torch.device("cuda")] + [torch.device(f"cuda:{i}") for i in range(torch.cuda.device_count())] \
        if torch.cuda.is_available() else []  # fmt: skip
    for name, key in keys.items():
        crypten.generators[name][torch.device("cpu")] = keyed_generator(key)
        if cuda:  # one stream object for every CUDA alias: two handles on one key would repeat it
            cuda_gen = keyed_generator(key, "cuda")
            for device in cuda:
                crypten.generators[name][device] = cuda_gen


def _ttp_server_setup(self) -> None:
    """Dealer: a fresh 256-bit key per computing party, sent over that party's TLS link only."""
    import crypten.communicator as comm
    import torch.distributed as dist

    ws = comm.get().get_world_size()
    keys = [new_key() for _ in range(ws)]
    reqs = [dist.isend(torch.from_numpy(np.frombuffer(k, dtype=np.int64).copy()), dst=i, group=self.ttp_group)
            for i, k in enumerate(keys)]  # fmt: skip
    self.generators = [keyed_generator(k) for k in keys]
    self.generators_cuda = [keyed_generator(k, "cuda") if torch.cuda.is_available() else None for k in keys]
    for r in reqs:
        if r is not None:
            r.wait()
    dist.barrier(group=self.ttp_group)


def _ttp_client_setup(self) -> None:
    import crypten.communicator as comm
    import torch.distributed as dist

    buf = torch.zeros(KEY_BYTES // 8, dtype=torch.int64)
    req = dist.irecv(buf, src=comm.get().get_ttp_rank(), group=self.ttp_group)
    if req is not None:
        req.wait()
    dist.barrier(group=self.ttp_group)
    key = buf.numpy().tobytes()
    self.generator = keyed_generator(key)
    self.generator_cuda = keyed_generator(key, "cuda") if torch.cuda.is_available() else None


def install() -> None:
    """Route every CrypTen random draw through keyed AES-CTR streams; keys from the OS."""
    import crypten
    from crypten.common import rng
    from crypten.mpc import primitives
    from crypten.mpc.primitives import arithmetic, binary
    from crypten.mpc.provider import tfp_provider, ttp_provider

    if getattr(rng.generate_random_ring_element, "_smt_aes", False):
        return

    def _gen(generator, device):
        if generator is None:
            dev = torch.device("cpu") if device is None else torch.device(device)
            generator = crypten.generators["local"][dev]
        return generator

    @functools.wraps(rng.generate_random_ring_element)
    def generate_random_ring_element(size, ring_size=(2**64), generator=None, **kwargs):
        if ring_size != 2**64:
            raise InsecureRandomness(f"ring size {ring_size} is not supported by the keyed generator")
        device = kwargs.get("device")
        return random_ring(size, _gen(generator, device), device)

    @functools.wraps(rng.generate_kbit_random_tensor)
    def generate_kbit_random_tensor(size, bitlength=None, generator=None, **kwargs):
        device = kwargs.get("device")
        return random_kbit(size, bitlength, _gen(generator, device), device)

    generate_random_ring_element._smt_aes = True  # type: ignore[attr-defined]
    rng.generate_random_ring_element = generate_random_ring_element
    rng.generate_kbit_random_tensor = generate_kbit_random_tensor
    for module in (arithmetic, binary, primitives, tfp_provider, ttp_provider):
        for name, fn in (("generate_random_ring_element", generate_random_ring_element),
                         ("generate_kbit_random_tensor", generate_kbit_random_tensor)):  # fmt: skip
            if hasattr(module, name):
                setattr(module, name, fn)
    crypten._setup_prng = _setup_prng_keys
    ttp_provider.TTPServer._setup_generators = _ttp_server_setup
    ttp_provider.TTPClient._TTPClient__TTPClient._setup_generators = _ttp_client_setup

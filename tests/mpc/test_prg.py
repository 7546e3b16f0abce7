"""AES-CTR pseudo-random shares (mpc/prg.py): a real PRG, in step between the holders of a seed."""

from __future__ import annotations

import numpy as np
import torch
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mpc import prg


def _gen(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def test_stream_is_aes128_ctr_under_the_seed_key():
    seed = 1234567
    got = prg.random_ring((5, 3), _gen(seed))
    enc = Cipher(algorithms.AES(prg.stream_key(seed)), modes.CTR(bytes(16))).encryptor()
    expected = np.frombuffer(enc.update(bytes(8 * 15)), dtype=np.int64).reshape(5, 3)
    assert got.dtype == torch.int64 and got.shape == (5, 3)
    assert np.array_equal(got.numpy(), expected)


def test_two_holders_of_a_seed_stay_in_step_and_other_seeds_differ():
    a, b = _gen(99), _gen(99)
    first = torch.cat([prg.random_ring((1000,), a), prg.random_ring((24,), a)])
    assert torch.equal(first, prg.random_ring((1024,), b))  # chunking does not change the stream
    assert not torch.equal(prg.random_ring((1024,), _gen(98)), first)


def test_reseeding_starts_the_new_seed_stream():
    g = _gen(7)
    prg.random_ring((16,), g)
    g.manual_seed(8)
    assert torch.equal(prg.random_ring((16,), g), prg.random_ring((16,), _gen(8)))


def test_bits_look_uniform():
    x = prg.random_ring((200_000,), _gen(5)).numpy().view(np.uint64)
    ones = np.unpackbits(x.view(np.uint8)).mean()
    assert abs(ones - 0.5) < 0.002
    assert (x >> np.uint64(63)).mean() > 0.49  # the top bit too (CrypTen's range misses 2^63 - 1)


def test_crypten_draws_go_through_aes_for_cpu_generators():
    from mpc._crypten import crypten  # the torch-onnx shim first; installs the PRG

    ttp_provider = crypten.mpc.provider.ttp_provider
    for module in (crypten.common.rng, crypten.mpc.primitives.arithmetic, ttp_provider):
        assert getattr(module.generate_random_ring_element, "_smt_aes", False)
    g1, g2 = _gen(42), _gen(42)
    assert torch.equal(ttp_provider.generate_random_ring_element((8,), generator=g1), prg.random_ring((8,), g2))

"""Keyed AES-256-CTR streams (mpc/prg.py): a real PRG, in step between the holders of a key,
and no way to draw a secret from torch's generators."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mpc import prg
from mpc.errors import InsecureRandomness


def test_stream_is_aes256_ctr_under_the_key():
    key = prg.new_key()
    got = prg.random_ring((5, 3), prg.keyed_generator(key))
    enc = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    expected = np.frombuffer(enc.update(bytes(8 * 15)), dtype=np.int64).reshape(5, 3)
    assert len(key) == 32 and got.dtype == torch.int64 and got.shape == (5, 3)
    assert np.array_equal(got.numpy(), expected)


def test_two_holders_of_a_key_stay_in_step_and_other_keys_differ():
    key = prg.new_key()
    a, b = prg.keyed_generator(key), prg.keyed_generator(key)
    first = torch.cat([prg.random_ring((1000,), a), prg.random_ring((24,), a)])
    assert torch.equal(first, prg.random_ring((1024,), b))  # chunking does not change the stream
    assert not torch.equal(prg.random_ring((1024,), prg.keyed_generator(prg.new_key())), first)


def test_keys_come_from_the_os_not_from_torch_state():
    torch.manual_seed(0)
    k1 = prg.new_key()
    torch.manual_seed(0)
    k2 = prg.new_key()
    assert k1 != k2


def test_an_unkeyed_or_short_keyed_generator_refuses_to_produce_secrets():
    g = torch.Generator()
    g.manual_seed(1234)
    with pytest.raises(InsecureRandomness, match="not keyed"):
        prg.random_ring((4,), g)
    with pytest.raises(InsecureRandomness, match="128 bits"):
        prg.keyed_generator(b"\x00" * 8)


def test_bits_look_uniform_and_bounded_draws_cover_their_range():
    g = prg.keyed_generator(prg.new_key())
    x = prg.random_ring((200_000,), g).numpy().view(np.uint64)
    ones = np.unpackbits(x.view(np.uint8)).mean()
    assert abs(ones - 0.5) < 0.002
    assert (x >> np.uint64(63)).mean() > 0.49
    z = prg.random_below((67_000,), 67, g).numpy()
    counts = np.bincount(z, minlength=67)
    assert z.min() == 0 and z.max() == 66 and counts.min() > 800  # ~1000 each
    bits = prg.random_kbit((10_000,), 1, g).numpy()
    assert set(np.unique(bits)) == {0, 1}


def test_torch_random_functions_raise_while_forbidden():
    with prg.torch_random_forbidden():
        for call in (lambda: torch.randint(0, 5, (3,)), lambda: torch.rand(3), lambda: torch.manual_seed(1),
                     lambda: torch.empty(3).uniform_(), lambda: torch.Generator().manual_seed(3),
                     lambda: torch.randperm(4)):  # fmt: skip
            with pytest.raises(InsecureRandomness):
                call()
        prg.random_ring((4,), prg.keyed_generator(prg.new_key()))  # ours still works
    torch.rand(2)  # restored afterwards


def test_crypten_draws_go_through_keyed_aes():
    from mpc._crypten import crypten  # the torch-onnx shim first; installs the PRG

    ttp_provider = crypten.mpc.provider.ttp_provider
    for module in (crypten.common.rng, crypten.mpc.primitives.arithmetic, ttp_provider):
        assert getattr(module.generate_random_ring_element, "_smt_aes", False)
    key = prg.new_key()
    g1, g2 = prg.keyed_generator(key), prg.keyed_generator(key)
    assert torch.equal(ttp_provider.generate_random_ring_element((8,), generator=g1), prg.random_ring((8,), g2))
    assert crypten._setup_prng is prg._setup_prng_keys
    assert ttp_provider.TTPServer._setup_generators is prg._ttp_server_setup


def test_small_bounds_are_exactly_uniform_by_rejection_and_holders_stay_in_step():
    key = prg.new_key()
    a, b = prg.keyed_generator(key), prg.keyed_generator(key)
    for bound, shape in ((67, (300, 41)), (66, (5000,)), (2, (17,)), (37, (999, 3))):
        x, y = prg.random_below(shape, bound, a, dtype=torch.int16), prg.random_below(shape, bound, b, dtype=torch.int16)
        assert torch.equal(x, y) and x.shape == shape and int(x.min()) >= 0 and int(x.max()) < bound
    # the table covers 0 .. bound - 1 equally often: bytes below 3 * 67 = 201 map three to one
    table = np.arange(201) % 67
    assert np.all(np.bincount(table) == 3)

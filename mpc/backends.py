"""Three backends for the one encoder in ``mpc.bert``: secure (ours), stock CrypTen, plaintext.

Each backend implements the same small set of operations; the architecture is written once.

* ``SecureOps``: our protocols on raw shares (``mpc.numerics``, ``mpc.protocols``): exact
  truncation, our exp/reciprocal/inverse square root/GELU/softmax, one-hot embedding with an
  integer one-hot (no truncation), masks shared as integers.
* ``StockOps``: the "vanilla" baseline of shared/FACTS.md: CrypTen ``MPCTensor`` with CrypTen's
  own softmax, LayerNorm through ``inv_sqrt``, GELU as x * sigmoid(1.702 x), CrypTen's
  probabilistic truncation.
* ``PlainOps``: float64 torch, exact functions: the reference, and the check that the
  architecture matches Hugging Face.
"""

from __future__ import annotations

import math

import torch

from mpc import numerics as nx
from mpc._crypten import crypten
from mpc.meter import component
from mpc.numerics import F, Fx
from mpc.protocols import ReusedWeightMask, matmul_raw, mul_many, plain


class SecureOps:
    """``weight_masks`` (a persistent model session, mpc/model_session.py): the weight matrices
    whose Beaver mask was opened once for the whole session; products with them open only the
    activations' masks."""

    name = "secure"

    def __init__(self, weight_masks: dict[int, ReusedWeightMask] | None = None):
        self.weight_masks = weight_masks or {}

    def _product(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        mask = self.weight_masks.get(id(w))
        if mask is None:
            return matmul_raw(x, w)
        lead = x.shape[:-1]
        return mask.matmul_raw(x.reshape(-1, x.shape[-1]), w).reshape(*lead, w.shape[-1])

    # layout ------------------------------------------------------------------------------
    def reshape(self, x: Fx, *shape: int) -> Fx:
        return Fx(x.share.reshape(*shape), x.bits)

    def permute(self, x: Fx, *dims: int) -> Fx:
        return Fx(x.share.permute(*dims), x.bits)

    def index(self, x: Fx, idx) -> Fx:
        return Fx(x.share[idx], x.bits)

    def add(self, a: Fx, b: Fx) -> Fx:
        return a + b

    def sum(self, x: Fx, dim: int) -> Fx:
        return Fx(x.share.sum(dim), x.bits)

    # linear algebra ----------------------------------------------------------------------
    def matmul(self, a: Fx, b: Fx, *, kind: str = "linear") -> Fx:
        with component(kind):
            raw = self._product(a.share, b.share)
            if a.bits + b.bits == F:
                return Fx(raw, F)
            (out,) = nx.truncate([(Fx(raw, a.bits + b.bits), F)])
            return out

    def linear(self, x: Fx, w: Fx, b: Fx) -> Fx:
        return self.matmul(x, w) + b

    def linear_residual_norm(self, x: Fx, w: Fx, b: Fx, residual: Fx, g: Fx, beta: Fx, eps: float) -> Fx:
        """LayerNorm(x @ w + b + residual) with the product's truncation and the row mean in
        one round: the mean is taken from the untruncated product (sum over the row divided
        by n * 2^16 exactly) plus the mean of b + residual."""
        if x.bits != F or w.bits != F:
            return self.layer_norm(self.linear(x, w, b) + residual, g, beta, eps)
        n = w.share.shape[-1]
        with component("linear"):
            raw = self._product(x.share, w.share)  # 2F bits
        with component("layernorm"):
            rest = b + residual
            y, m1, m2 = nx.truncate_by([
                (Fx(raw, 2 * F), 1, F),
                (Fx(raw.sum(-1, keepdim=True), 2 * F), n, F),
                (Fx(rest.share.sum(-1, keepdim=True), F), n, F),
            ])  # fmt: skip
            return nx.layer_norm(y + rest, g, beta, eps, mean=m1 + m2)

    def embed(self, ids: torch.Tensor | None, n_tokens: int, word: Fx, *, block: int = 1024) -> Fx:
        """Rows of ``word`` for the data owner's token ids, as one-hot products (n_tokens, H).

        The data owner shares the integer one-hot rows block by block (no communication);
        every block reuses one weight mask (ReusedWeightMask), so memory stays at
        block x vocabulary.  Integer one-hot times fixed-point weights needs no truncation.
        """
        vocab = word.share.shape[0]
        with component("embedding"):
            lookup = self.weight_masks.get(id(word.share)) or ReusedWeightMask(word.share)
            rows = []
            for start in range(0, n_tokens, block):
                stop = min(n_tokens, start + block)
                if ids is not None:
                    onehot = torch.nn.functional.one_hot(ids[start:stop], vocab).double()
                else:
                    onehot = torch.zeros(stop - start, vocab, dtype=torch.float64)
                share = plain(crypten.cryptensor(onehot, src=0, precision=0, device=word.share.device)._tensor.share)
                rows.append(lookup.matmul_raw(share, word.share))
            if id(word.share) not in self.weight_masks:
                lookup.close()
            return Fx(torch.cat(rows), word.bits)

    def mul_mask(self, x: Fx, mask_int: torch.Tensor) -> Fx:
        """x * m for an integer-shared 0/1 mask m: one round, no truncation."""
        with component("pooling"):
            return Fx(mul_many([(x.share, mask_int)])[0], x.bits)

    # non-linear --------------------------------------------------------------------------
    def softmax(self, scores: Fx, key_mask, length: int) -> Fx:
        with component("softmax"):
            return nx.softmax(scores, key_mask, length)

    def gelu(self, x: Fx) -> Fx:
        with component("gelu"):
            return nx.gelu(x)

    def layer_norm(self, x: Fx, g: Fx, b: Fx, eps: float) -> Fx:
        with component("layernorm"):
            return nx.layer_norm(x, g, b, eps)

    def tanh(self, x: Fx) -> Fx:
        with component("head"):
            return nx.tanh(x)

    def l2_normalize(self, v: Fx, length: int) -> Fx:
        """v / ||v|| over the last dim; v is a masked *sum* of hidden states over <= length tokens.

        v / length keeps the squared norm inside the inverse square root's range; the scale
        cancels in the normalisation.
        """
        with component("pooling"):
            u = 1 << max(0, math.ceil(math.log2(max(length, 1))))
            (m,) = nx.truncate_by([(v, u, F)])
            sq = mul_many([(m.share, m.share)])[0]
            (ss,) = nx.truncate_by([(Fx(sq.sum(-1, keepdim=True), 2 * F), 1, nx.G)])
            y = nx.inv_sqrt(ss)
            (out,) = nx.mul([(m, y, F)])
            return out


class _TensorLayout:
    """Layout operations shared by the backends whose values are tensor-like objects."""

    def reshape(self, x, *shape):
        return x.reshape(*shape)

    def permute(self, x, *dims):
        return x.permute(*dims)

    def index(self, x, idx):
        return x[idx]

    def add(self, a, b):
        return a + b

    def sum(self, x, dim):
        return x.sum(dim)


class StockOps(_TensorLayout):
    """CrypTen's stock functions on MPCTensor (the vanilla baseline)."""

    name = "vanilla"
    MASK_BIAS = 128.0  # CrypTen's exp is (1 + x/256)^256: keep masked logits above -256

    def matmul(self, a, b, *, kind: str = "linear"):
        with component(kind):
            return a.matmul(b)

    def linear(self, x, w, b):
        return self.matmul(x, w) + b

    def linear_residual_norm(self, x, w, b, residual, g, beta, eps):
        return self.layer_norm(self.linear(x, w, b) + residual, g, beta, eps)

    def embed(self, ids, n_tokens, word):
        """CrypTen's way: the whole one-hot batch as one fixed-point shared matrix."""
        vocab = word.shape[0]
        if ids is not None:
            onehot = torch.nn.functional.one_hot(ids, vocab).float()
        else:
            onehot = torch.zeros(n_tokens, vocab)
        with component("embedding"):
            return crypten.cryptensor(onehot, src=0, device=word.device).matmul(word)

    def mul_mask(self, x, mask):
        with component("pooling"):
            return x * mask

    def softmax(self, scores, key_mask, length):
        with component("softmax"):
            return (scores + (key_mask - 1) * self.MASK_BIAS).softmax(-1)

    def gelu(self, x):
        with component("gelu"):
            return x * (x * 1.702).sigmoid()

    def layer_norm(self, x, g, b, eps):
        with component("layernorm"):
            mean = x.mean(-1, keepdim=True)
            d = x - mean
            var = (d * d).mean(-1, keepdim=True)
            return d * (var + eps).inv_sqrt() * g + b

    def tanh(self, x):
        with component("head"):
            return x.tanh()

    def l2_normalize(self, v, length):
        with component("pooling"):
            m = v / float(length)
            return m * (m * m).sum(-1, keepdim=True).inv_sqrt()


class PlainOps(_TensorLayout):
    """Exact float64 reference (same architecture code path)."""

    name = "plaintext"

    def matmul(self, a, b, *, kind: str = "linear"):
        return a @ b

    def linear(self, x, w, b):
        return x @ w + b

    def linear_residual_norm(self, x, w, b, residual, g, beta, eps):
        return self.layer_norm(self.linear(x, w, b) + residual, g, beta, eps)

    def embed(self, ids, n_tokens, word):
        return word[ids]

    def mul_mask(self, x, mask):
        return x * mask

    def softmax(self, scores, key_mask, length):
        return torch.softmax(scores.masked_fill(key_mask == 0, float("-inf")), dim=-1)

    def gelu(self, x):
        return torch.nn.functional.gelu(x)

    def layer_norm(self, x, g, b, eps):
        return torch.nn.functional.layer_norm(x, x.shape[-1:], g, b, eps)

    def tanh(self, x):
        return torch.tanh(x)

    def l2_normalize(self, v, length):
        return torch.nn.functional.normalize(v, dim=-1)

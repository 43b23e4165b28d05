"""How a request chooses its tokens: sampling parameters, temperature/top-p sampling, and the
incremental detokenizer that streams text and honours stop strings.

These run once per request per step, on the engine thread, after the forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

__all__ = ["SamplingParams", "TextStream", "sample_token"]

@dataclass
class SamplingParams:
    """How one request chooses its tokens.

    Parameters
    ----------
    max_tokens : int
        Most tokens to generate (the end-of-turn token included when it is generated).
    temperature : float
        0 means greedy (argmax); otherwise softmax sampling at this temperature.
    top_p : float
        Nucleus sampling: keep the smallest set of tokens whose probability sums to ``top_p``.
    seed : int or None
        Seeds this request's own random generator, so a seeded request samples the same tokens
        whatever else is in the batch (as long as the logits agree).
    stop : list of str
        Stop as soon as the generated text contains one of these; the stop string is not returned.

    Examples
    --------
    >>> SamplingParams(max_tokens=16, temperature=0).greedy
    True
    """

    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if not 0 <= self.temperature <= 2:
            raise ValueError(f"temperature must be in [0, 2], got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


class TextStream:
    """Incremental detokenization with stop strings.

    Byte-level BPE tokens can split a UTF-8 character, so text is released only once it decodes
    cleanly; when stop strings are set, the last ``len(longest stop) - 1`` characters are held back
    until it is clear they do not start a stop string. :meth:`take` returns what was released
    since the last call, so the streamed pieces add up to :attr:`text` exactly.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> tok = SimpleNamespace(decode=lambda ids, skip_special_tokens=True: "".join(map(chr, ids)))
    >>> s = TextStream(tok, stop=["!"])
    >>> for c in "hi!x":
    ...     s.push(ord(c))
    >>> s.text, s.stopped, s.take(final=True)
    ('hi', True, 'hi')
    """

    def __init__(self, tokenizer: Any, stop: Sequence[str] = ()) -> None:
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self._hold = max((len(s) for s in self.stop), default=1) - 1
        self.ids: list[int] = []
        self._prefix = 0  # token offsets of the incremental-decoding window (as in TGI and vLLM)
        self._read = 0
        self.text = ""  # all clean text so far (cut at the stop string once one is seen)
        self.released = 0  # characters of `text` that may be shown
        self._taken = 0
        self.stopped = False

    def push(self, token_id: int) -> None:
        """Add one generated token (not the end-of-turn token)."""
        if self.stopped:
            return
        self.ids.append(int(token_id))
        decode = self.tokenizer.decode
        before = decode(self.ids[self._prefix:self._read], skip_special_tokens=True)
        now = decode(self.ids[self._prefix:], skip_special_tokens=True)
        if len(now) > len(before) and not now.endswith("\ufffd"):
            self.text += now[len(before):]
            self._prefix, self._read = self._read, len(self.ids)
        if self.stop:
            cut = min((i for i in (self.text.find(s) for s in self.stop) if i >= 0), default=-1)
            if cut >= 0:
                self.text = self.text[:cut]
                self.stopped = True
                self.released = len(self.text)
                return
            self.released = max(self.released, len(self.text) - self._hold)
        else:
            self.released = len(self.text)

    def take(self, final: bool = False) -> str:
        """Text released since the last call; ``final=True`` releases everything held back."""
        if final:
            self.released = len(self.text)
        out = self.text[self._taken:self.released]
        self._taken = self.released
        return out


def sample_token(logits: torch.Tensor, temperature: float, top_p: float,
                 generator: torch.Generator | None = None) -> int:
    """Sample one token id from a 1-D logits vector with temperature and nucleus (top-p) filtering.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> sample_token(torch.tensor([0.0, 10.0, 0.0]), temperature=1.0, top_p=0.5, generator=g)
    1
    """
    if temperature <= 0:
        return int(logits.argmax())
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1:
        sorted_p, order = probs.sort(descending=True)
        cum = sorted_p.cumsum(0)
        keep = int((cum < top_p).sum()) + 1  # smallest prefix whose mass reaches top_p
        keep = max(1, min(keep, sorted_p.numel()))
        sorted_p = sorted_p[:keep] / sorted_p[:keep].sum()
        choice = torch.multinomial(sorted_p.cpu(), 1, generator=generator)
        return int(order[int(choice)])
    return int(torch.multinomial(probs.cpu(), 1, generator=generator))

"""
Output distributions of DreamerV3 (2023) in PyTorch.

* categorical latents/actions with a 1 % uniform mixture ("unimix") and straight-through
  one-hot samples, so gradients reach the logits through a discrete sample;
* two-hot encoded symlog regression over fixed bins for reward and value (robust to scale);
* Bernoulli (logits) for continuation flags and the binary BEV masks.
"""
from typing import Optional

import torch
import torch.nn.functional as F


def symlog(x: torch.Tensor) -> torch.Tensor:
    """sign(x) * ln(1 + |x|): compresses large magnitudes, identity-like near 0."""
    return torch.sign(x) * torch.log1p(torch.abs(x))


def symexp(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`symlog`."""
    return torch.sign(x) * torch.expm1(torch.abs(x))


def unimix_logits(logits: torch.Tensor, unimix: float) -> torch.Tensor:
    """
    Log-probabilities of (1 - unimix) * softmax(logits) + unimix / classes (last dim).

    Keeps every class probability >= unimix / classes, bounding KL terms and log-likelihoods.
    """
    if unimix <= 0.0:
        return torch.log_softmax(logits, -1)
    probs = torch.softmax(logits, -1)
    probs = (1.0 - unimix) * probs + unimix / logits.shape[-1]
    return torch.log(probs)


def sample_one_hot(logits: torch.Tensor, generator: Optional[torch.Generator] = None
                   ) -> torch.Tensor:
    """One-hot sample over the last dim with straight-through gradients to the probabilities."""
    probs = torch.softmax(logits, -1)
    flat = probs.reshape(-1, probs.shape[-1])
    index = torch.multinomial(flat.detach(), 1, generator=generator).reshape(probs.shape[:-1])
    one_hot = F.one_hot(index, probs.shape[-1]).to(probs.dtype)
    return one_hot + probs - probs.detach()


def mode_one_hot(logits: torch.Tensor) -> torch.Tensor:
    """Most likely class as a one-hot (straight-through to the probabilities)."""
    probs = torch.softmax(logits, -1)
    one_hot = F.one_hot(probs.argmax(-1), probs.shape[-1]).to(probs.dtype)
    return one_hot + probs - probs.detach()


def categorical_kl(lhs_logits: torch.Tensor, rhs_logits: torch.Tensor) -> torch.Tensor:
    """
    KL[lhs || rhs] of independent categoricals (..., latents, classes), summed over latents.

    Inputs are (normalised) log-probabilities or raw logits; both are log-softmaxed here.
    """
    lhs = torch.log_softmax(lhs_logits, -1)
    rhs = torch.log_softmax(rhs_logits, -1)
    return (lhs.exp() * (lhs - rhs)).sum((-1, -2))


def categorical_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of independent categoricals (..., latents, classes), summed over latents."""
    logp = torch.log_softmax(logits, -1)
    return -(logp.exp() * logp).sum((-1, -2))


class TwoHotSymlog:
    """
    Two-hot symlog distribution over ``bins`` equally spaced in symlog space.

    ``mean(logits)`` = symexp(sum_i softmax(logits)_i * bin_i) and
    ``log_prob(logits, x)`` = sum_i twohot(symlog(x))_i * log_softmax(logits)_i,
    exactly as the DreamerV3 reward and critic heads.
    """

    def __init__(self, bins: torch.Tensor):
        """Hold the 1-D tensor of bin centres (symlog space, increasing)."""
        self.bins = bins

    @classmethod
    def linspace(cls, low: float, high: float, num: int) -> 'TwoHotSymlog':
        """Create equally spaced bins in symlog space (DreamerV3: -20 .. 20, 255 bins)."""
        return cls(torch.linspace(low, high, num))

    def to(self, device) -> 'TwoHotSymlog':
        """Return the same distribution with bins on ``device``."""
        return TwoHotSymlog(self.bins.to(device))

    def mean(self, logits: torch.Tensor) -> torch.Tensor:
        """Return the expected value (...,) in the original (symexp) space from logits."""
        probs = torch.softmax(logits, -1)
        return symexp((probs * self.bins.to(logits.device)).sum(-1))

    def two_hot(self, x: torch.Tensor) -> torch.Tensor:
        """Encode symlog(x) as a two-hot target (..., bins) on the two neighbouring bins."""
        bins = self.bins.to(x.device)
        y = symlog(x).clamp(bins[0], bins[-1])
        above = torch.searchsorted(bins, y.contiguous(), right=False).clamp(0, len(bins) - 1)
        below = (above - 1).clamp(0, len(bins) - 1)
        width = bins[above] - bins[below]
        same = width <= 0
        safe_width = torch.where(same, torch.ones_like(y), width)
        weight_above = torch.where(same, torch.ones_like(y), (y - bins[below]) / safe_width)
        weight_below = 1.0 - weight_above
        target = torch.zeros(*y.shape, len(bins), device=x.device, dtype=x.dtype)
        target.scatter_add_(-1, below.unsqueeze(-1), weight_below.unsqueeze(-1))
        target.scatter_add_(-1, above.unsqueeze(-1), weight_above.unsqueeze(-1))
        return target

    def log_prob(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Return the log-likelihood (...,) of targets x (...,) under logits (..., bins)."""
        target = self.two_hot(x.to(logits.dtype))
        return (target * torch.log_softmax(logits, -1)).sum(-1)


def bernoulli_log_prob(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Elementwise log p(target) of Bernoulli(sigmoid(logits)), target in [0, 1]."""
    return -F.binary_cross_entropy_with_logits(logits, target, reduction='none')

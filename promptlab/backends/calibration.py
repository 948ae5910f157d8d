"""Label-bias calibration: divide a prior over the labels out of p(label | x).

    calibrated(y | x) = p(y | x) / prior(y), renormalised over the labels

The calibrations differ in where the prior comes from:
- `none`: no prior.
- `contextual` (Zhao et al., 2021, "Calibrate Before Use"): the mean label distribution of
  content-free inputs, every field filled with "N/A", "" or the model's mask token.
- `pmi` (Holtzman et al., 2021, PMI_DC): per word rather than per label, log p(word | prompt) minus
  log p(word | domain-only prompt); applied in `promptlab.backends.scoring` before the words are aggregated.
- `batch` (Zhou et al., 2023, "Batch Calibration"): the mean of the uncalibrated label
  probabilities over the examples being classified. A stream of examples (a server, `predict`
  on a pipe) uses `RunningPrior`: the mean over everything seen so far, after a warm-up.

This module reads tensors through their methods only, so importing it does not import torch:
the command line reads CALIBRATIONS from here and stays fast to start.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

CALIBRATIONS = ("none", "contextual", "pmi", "batch")
MASK_FILLER = "[MASK]"  # stands for the model's mask token; literal text for a model without one
CONTENT_FREE_FILLERS = ("N/A", "", MASK_FILLER)
DEFAULT_WARMUP = 16  # examples a running prior sees before it calibrates anything


def content_free_fillers(mask_token: str | None) -> tuple[str, ...]:
    """The three content-free fillers, the mask filler spelt as this tokenizer's mask token."""
    return tuple(mask_token if filler == MASK_FILLER and mask_token else filler for filler in CONTENT_FREE_FILLERS)


def divide_out(logprobs: "torch.Tensor", log_prior: "torch.Tensor") -> "torch.Tensor":
    """log p(label | x) [N, labels] with the prior [labels] divided out, renormalised over the labels."""
    return (logprobs - log_prior.to(logprobs.device, logprobs.dtype)).log_softmax(-1)


def mean_distribution(logprobs: "torch.Tensor") -> "torch.Tensor":
    """log of the mean label distribution over the rows of logprobs [N, labels] -> [labels]."""
    return logprobs.logsumexp(0) - math.log(logprobs.shape[0])


def batch_calibrate(logprobs: "torch.Tensor") -> "torch.Tensor":
    """Batch calibration of a whole set at once: its own mean label distribution divided out."""
    return divide_out(logprobs, mean_distribution(logprobs))


class RunningPrior:
    """Batch calibration for a stream: the prior is the mean label distribution of everything seen.

    `calibrate(batch)` first adds the batch to the running mean, then divides the mean out, so a
    whole set passed in one call is calibrated exactly as `batch_calibrate` does. Until `warmup`
    examples have been seen the mean is too noisy to trust (after one example it is that
    example, which it would flatten to uniform), so those batches come back uncalibrated.
    The mean is kept in float64 so a long stream does not drift.
    """

    def __init__(self, warmup: int = DEFAULT_WARMUP):
        if warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {warmup}")
        self.warmup = warmup
        self.seen = 0
        self._total: "torch.Tensor | None" = None  # sum of label probabilities [labels], float64

    def observe(self, logprobs: "torch.Tensor") -> None:
        """Add label log-probabilities [N, labels] (uncalibrated) to the running mean."""
        total = logprobs.detach().double().exp().sum(0).cpu()
        if self._total is not None and total.shape != self._total.shape:
            raise ValueError(f"expected {self._total.shape[0]} labels, got {total.shape[0]}")
        self._total = total if self._total is None else self._total + total
        self.seen += logprobs.shape[0]

    @property
    def ready(self) -> bool:
        return self.seen > 0 and self.seen >= self.warmup

    def log_prior(self) -> "torch.Tensor":
        """log of the mean label distribution seen so far [labels]."""
        if not self.seen:
            raise ValueError("the running prior has seen no examples yet")
        return (self._total / self.seen).log()

    def calibrate(self, logprobs: "torch.Tensor") -> "torch.Tensor":
        """Observe the batch, then divide out the running prior (uncalibrated during the warm-up)."""
        self.observe(logprobs)
        return divide_out(logprobs, self.log_prior()) if self.ready else logprobs

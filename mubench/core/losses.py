"""The task loss and per-sample correctness for both task kinds (multiclass, multilabel)."""
from __future__ import annotations

from enum import Enum

import torch
import torch.nn.functional as F


class TaskKind(str, Enum):
    MULTICLASS = "multiclass"
    MULTILABEL = "multilabel"


def task_loss(logits: torch.Tensor, targets: torch.Tensor, kind: TaskKind, reduction: str = "mean") -> torch.Tensor:
    """CE for multiclass; BCE-with-logits averaged over attributes for multilabel (one value per sample)."""
    if kind == TaskKind.MULTICLASS:
        return F.cross_entropy(logits, targets, reduction=reduction)
    per_sample = F.binary_cross_entropy_with_logits(logits, targets.float(), reduction="none").mean(dim=1)
    return per_sample if reduction == "none" else getattr(per_sample, reduction)()


def correct(logits: torch.Tensor, targets: torch.Tensor, kind: TaskKind) -> torch.Tensor:
    """Per-sample accuracy: 1/0 for multiclass, fraction of attributes right (logit > 0) for multilabel."""
    if kind == TaskKind.MULTICLASS:
        return (logits.argmax(dim=1) == targets).float()
    return ((logits > 0).float() == targets.float()).float().mean(dim=1)


def soft_predictions(logits: torch.Tensor, kind: TaskKind, temperature: float = 1.0) -> torch.Tensor:
    """Softened outputs a student distils: softmax over classes, or a sigmoid per attribute (multilabel)."""
    scaled = logits / temperature
    return F.softmax(scaled, dim=1) if kind == TaskKind.MULTICLASS else torch.sigmoid(scaled)


def distill_kl(student_logits: torch.Tensor, teacher_probs: torch.Tensor, kind: TaskKind,
               temperature: float = 1.0) -> torch.Tensor:
    """Per-sample KL(teacher ‖ student) at `temperature`.

    Multiclass: over the softmax distribution. Multilabel: the Bernoulli KL of each attribute's sigmoid,
    averaged over attributes (the same averaging as `task_loss`).
    """
    scaled = student_logits / temperature
    if kind == TaskKind.MULTICLASS:
        return F.kl_div(F.log_softmax(scaled, dim=1), teacher_probs, reduction="none").sum(dim=1)
    t = teacher_probs
    per_attribute = (torch.special.xlogy(t, t) - t * F.logsigmoid(scaled)
                     + torch.special.xlogy(1 - t, 1 - t) - (1 - t) * F.logsigmoid(-scaled))
    return per_attribute.mean(dim=1)

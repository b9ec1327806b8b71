"""Selective Synaptic Dampening (Foster, Schoepf & Brintrup, "Fast Machine Unlearning Without Retraining Through
Selective Synaptic Dampening", AAAI 2024; official code if-loops/selective-synaptic-dampening, `ssd.py`).

No gradient steps. With the model in eval mode, two diagonal Fisher importances per parameter entry:
[]_Df on the forget set and []_D on the full training set D = retain ∪ forget (the method sees both, which
together are that set). Every entry whose forget importance exceeds α' times its overall importance
([]_Df > α'·[]_D, the selection) is multiplied by β = min(λ·[]_D / []_Df, 1) (the dampening); every other entry is
left exactly as it was. α' is the paper's α carried over to the task's forget share (below); with
`alpha_rule="fixed"`, α' = α as the paper and the official code apply it. Defaults are theirs for ResNet18 on CIFAR:
α = 10, λ = 1.

The paper defines the importance as the expected squared gradient of the log-likelihood; mubench estimates it as
the official `calc_importance` does: the squared gradient of each batch's mean task loss, averaged over batches of
128 (the loaders of their random-forgetting script; their class scripts use 64), the full set unshuffled (retain,
then forget). Per-image gradients would be the textbook empirical Fisher but cost one backward pass per image, which
is not what the paper's timings measure. Multi-label tasks: the log-likelihood is the task's per-attribute BCE.

α carried over to the forget share. The overall importance contains the forget set's own: per image, with
s = |D_f| / |D| the forget share, []_D = s·[]_Df + (1 − s)·[]_Dr ([]_Dr: the retain importance). So the ratio the
selection tests, []_Df / []_D, can never exceed 1/s = |D|/|D_f| (reached by an entry that only forget images
move), and a fixed α ≥ 1/s selects nothing: SSD returns the Original untouched. The authors' settings keep s small
(their scripts in if-loops/selective-synaptic-dampening, `src/*_exps.sh` and `forget_*_main.py`, CIFAR train sets of
50,000): CIFAR-100 full class and CIFAR-20 sub-class 500 images, s = 1 %; CIFAR-10 random `forget_perc` 0.00165
(the script says about 100 images), s ≈ 0.2 %; CIFAR-20 full class 2,500, s = 5 %; PinsFaceRecognition one of 105
celebrities, s ≈ 1 %. There 1/s is 20 to 600, far above α = 10. Substituting the decomposition,

    []_Df > α'·(s·[]_Df + (1 − s)·[]_Dr)  ⟺  []_Df·(1 − α'·s) > α'·(1 − s)·[]_Dr,

so at share s the selection is []_Df > ρ·[]_Dr with ρ = α'·(1 − s) / (1 − α'·s): "the entry is ρ times more
important to the forget set than to the rest". The authors' α = 10 means ρ = 10·(1 − s)/(1 − 10·s): 10.2 at
s = 0.2 %, 11.0 at 1 %, 19 at 5 %: about α itself, the s → 0 limit, at the shares where CIFAR-100 and the faces
were run. mubench keeps that meaning, ρ = α, and solves for the α' that tests it at the task's share:

    α' = α / (1 + (α − 1)·s),

which always lies below the reachable 1/s (α' < 1/s ⟺ s < 1) and is α again as s → 0. The committed tasks
(split sizes as the tasks' manifests give them, retain / forget):
- digits random: 1,068 / 189, s = 189 / 1,257 = 0.1504: α' = 10 / (1 + 9 × 0.1504) = 10 / 2.353 = 4.25
  (cap 1/s = 6.65; the batched estimate's own cap, forget in batches 9 (84 of 128) and 10 (105), is 7.0);
- digits class 3: 1,129 / 128, s = 0.1018: α' = 10 / 1.917 = 5.22 (cap 9.82; batched 9.7);
- fer2013-mini random: 1,190 / 210, s = 0.15: α' = 10 / 2.35 = 4.26 (cap 6.67; batched 8.0).
With the fixed α = 10 all three select nothing, or next to nothing where batch noise lifts a batched ratio past
its cap (the boards' SSD rows read as the Original's). One cell, digits random, seed 0 (`mubench run --methods ssd
--seeds 0 --ablate --threads 1 --workers 1`): α' = 4.25 dampens 1.32 % of the entries, test accuracy 0.756 against
the Original's 0.772 (272 vs 278 of 360 images; binomial s.e. 0.022); the fixed α = 10 dampens 0.30 % (0.769);
α = 5 → α' 3.12, 2.15 % (0.756); α = 50 → α' 5.98, 0.68 % (0.764). The rule the ratio of caps
suggests, α' = α·(1/s)/(1/s_paper) = 10 × 6.65 / 100 = 0.67 on digits, would not keep the meaning: α' < 1 selects
entries whose forget importance is below their overall one (there []_Df > 0.63·[]_Dr), i.e. weights the retain set
needs as much, and dampens them. The decomposition holds exactly for per-image importances; the batched estimate
weighs the forget images by the share of batches they fill (the caps in brackets above), close to s when both sets
span several batches. α' is logged per cell as `ssd_alpha`, the share of parameter entries dampened as
`ssd_dampened_share` (the board's SSD ablation section shows it).

Ablations vary α, the selection, over the paper's other settings, λ kept at 1, each carried over by the same rule:
5 (its ViT full-class value; α' 3.1 on digits random) and 50 (its PinsFaceRecognition value, there with λ = 0.1, for
classes more alike than CIFAR's; α' 6.0 on digits random); and `fixed-alpha`, the paper's α = 10 as the authors
apply it, which shows the selection empty at these shares.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from mubench.unlearn.api import UnlearnContext, UnlearnData, Unlearner, register_method
from mubench.core.errors import MubenchError
from mubench.core.search import LogUniform
from mubench.data.splits import BatchLoader
from mubench.core.losses import TaskKind, task_loss
from mubench.core.ranges import Positive, Size

ALPHA_RULES = ("forget-share", "fixed")


def importances(model: nn.Module, batches: BatchLoader, kind: TaskKind) -> dict[str, torch.Tensor]:
    """name -> mean over batches of (∂ batch-mean loss / ∂θ)², the model in eval mode (official calc_importance)."""
    was_training = model.training
    model.eval()
    total = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    count = 0
    for x, y in batches:
        model.zero_grad(set_to_none=True)
        task_loss(model(x), y, kind).backward()
        for name, p in model.named_parameters():
            if p.grad is not None:
                total[name] += p.grad.detach().pow(2)
        count += 1
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return {name: value / max(1, count) for name, value in total.items()}


def share_alpha(alpha: float, forget_share: float) -> float:
    """α' = α / (1 + (α − 1)·s): the threshold on []_Df / []_D that selects []_Df > α·[]_Dr at forget share s
    (the module docstring derives it)."""
    return alpha / (1.0 + (alpha - 1.0) * forget_share)


@torch.no_grad()
def dampen(model: nn.Module, full: dict[str, torch.Tensor], forget: dict[str, torch.Tensor], alpha: float,
           lam: float) -> int:
    """θ ← β·θ with β = min(λ·full / forget, 1) where forget > α·full; unchanged elsewhere. Returns how many
    entries were selected."""
    count = 0
    for name, p in model.named_parameters():
        selected = forget[name] > alpha * full[name]
        beta = (lam * full[name] / forget[name]).clamp(max=1.0)
        p.copy_(torch.where(selected, p * beta, p))
        count += int(selected.sum())
    return count


@register_method("ssd")
class SSD(Unlearner):
    """Dampen the weights far more important to forget than to the training set (Foster et al. 2024)."""

    @dataclass(frozen=True)
    class Config:
        alpha: Positive = 10.0  # selection α: forget importance > α × the rest's; paper and official code (ResNet18)
        alpha_rule: Literal["forget-share", "fixed"] = "forget-share"  # α at the task's share (docstring) | α as is
        lam: Positive = 1.0  # dampening λ: β = min(λ·overall/forget, 1); paper and official code (ResNet18, CIFAR)
        batch_size: Size = 128  # batches of the importance estimates; official code's random-forgetting loaders

        def __post_init__(self):
            if self.alpha_rule not in ALPHA_RULES:
                raise MubenchError(f"ssd.alpha_rule={self.alpha_rule!r} is not valid; "
                                   f"choose one of: {', '.join(ALPHA_RULES)}.")
    # mubench tune: selection α and dampening λ, the paper's two
    search_space = {"alpha": LogUniform(1.0, 100.0), "lam": LogUniform(0.1, 10.0)}

    # the paper's other α settings, and its α applied unscaled (empty selection at forget shares ≥ 1/α)
    ablations = {"alpha5": {"alpha": 5.0}, "alpha50": {"alpha": 50.0}, "fixed-alpha": {"alpha_rule": "fixed"}}

    def selection_alpha(self, retain: int, forget: int) -> float:
        """The α' the selection compares []_Df / []_D with, for a task of `retain` and `forget` images."""
        cfg = self.config
        if cfg.alpha_rule == "fixed":
            return cfg.alpha
        return share_alpha(cfg.alpha, forget / max(1, retain + forget))

    def unlearn(self, model: nn.Module, data: UnlearnData, ctx: UnlearnContext) -> nn.Module:
        cfg = self.config
        train = data.retain.concat(data.forget)
        full_batches = BatchLoader(train, data.preprocess, cfg.batch_size, device=data.device)
        forget_batches = data.loader("forget", shuffle=False, batch_size=cfg.batch_size)
        forget = importances(model, ctx.progress(forget_batches, "ssd forget", len(forget_batches)), data.kind)
        full = importances(model, ctx.progress(full_batches, "ssd full", len(full_batches)), data.kind)
        alpha = self.selection_alpha(len(data.retain), len(data.forget))
        selected = dampen(model, full, forget, alpha, cfg.lam)
        ctx.log_metric("ssd_alpha", alpha)
        ctx.log_metric("ssd_dampened_share", selected / sum(p.numel() for p in model.parameters()))
        return model.eval()

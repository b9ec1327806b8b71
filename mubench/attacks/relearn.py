"""Relearning: is the forget set removed from the weights, or only hidden from the outputs?

The attacker fine-tunes a copy of the unlearned model on a small seeded subset of the forget set (`FRACTION` of it,
the same images for every row of a board) for `STEPS` SGD steps at a small learning rate (`LR`, momentum `MOMENTUM`:
on fer2013-mini it leaves the Original's accuracy on the other forget images about where it was, 0.78 to 0.70 over the
steps, where 1e-3 took it to 0.55 and the recipes' from-scratch rates wreck a model in one step), and reads the
accuracy on the *other* forget images after each step (relearn time: Golatkar et al., CVPR 2020; few-shot relearning
in LLM unlearning). A model that only suppressed the forget set's outputs recovers them in a few steps; one that never
learned them (Retrain) recovers them only as fast as the held-out images generalise from the subset. Retrain's row is
the value a perfect unlearner matches.

- `relearn_steps`: steps until the held-out forget accuracy is halfway back from Retrain's to the Original's on the
  same images (0: already there; `STEPS + 1`: not within the budget, a censored value). Halfway, not all the way: a
  model that hid the forget set recovers much of it in a few steps, rarely all of it.
- `relearn_reached`: 1 where the threshold was reached within the budget, 0 where `relearn_steps` is censored; its
  mean over seeds is the share of seeds that reached it (a mean of censored step counts alone would hide that).
- `relearn_auc`: the mean held-out forget accuracy over steps 0 to `STEPS`, the area under the recovery curve.

BatchNorm statistics stay frozen (eval mode) while the attacker trains: a handful of images per step would replace
the running statistics the model was scored with. The curve is logged as the metric history `relearn_curve`.
"""
from __future__ import annotations

import copy

import mlflow
import numpy as np
import torch

from mubench.attacks.base import Attack, AttackedCell, AttackUnavailable, Column, register_attack
from mubench.core.losses import task_loss
from mubench.data.splits import BatchLoader
from mubench.scores import metrics

FRACTION = 0.1  # of the forget set the attacker fine-tunes on
MIN_SUBSET = 2  # images the attacker needs, and the held-out forget images the curve needs
STEPS = 20
LR = 1e-4
MOMENTUM = 0.9


def relearn_subset(forget_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the attacker's forget images and of the held-out ones, the same for every row of a seed."""
    order = torch.from_numpy(np.random.RandomState(seed).permutation(forget_size))
    taken = max(MIN_SUBSET, round(FRACTION * forget_size))
    return order[:taken], order[taken:]


def recovery_curve(model, attacker_set, held_out, splits, recipe, device, seed: int) -> list[float]:
    """Held-out forget accuracy of a copy of `model` before and after each of `STEPS` fine-tuning steps."""
    model = copy.deepcopy(model).eval()
    optimiser = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    generator = torch.Generator().manual_seed(seed)
    batches = iter(())
    curve = [metrics.mean_or_nan(metrics.evaluate(model, held_out, splits.kind, splits.preprocess, device)[1])]
    for _ in range(STEPS):
        batch = next(batches, None)
        if batch is None:
            batches = iter(BatchLoader(attacker_set, splits.preprocess, recipe.batch_size, shuffle=True,
                                       seed=int(torch.randint(2**31, (1,), generator=generator)), device=device))
            batch = next(batches)
        x, y = batch
        optimiser.zero_grad()
        task_loss(model(x), y, splits.kind).backward()
        optimiser.step()
        curve.append(metrics.mean_or_nan(metrics.evaluate(model, held_out, splits.kind, splits.preprocess, device)[1]))
    return curve


def steps_to(curve: list[float], threshold: float) -> int:
    return next((step for step, accuracy in enumerate(curve) if accuracy >= threshold), STEPS + 1)


@register_attack("relearn")
class Relearn(Attack):
    """Relearning: fine-tune on 10 % of forget, count the steps until the rest of forget is back."""
    title = "relearning"
    columns = (Column("relearn_steps", "relearn steps", digits=1), Column("relearn_reached", "relearn reached"),
               Column("relearn_auc", "relearn AUC"))

    def __init__(self, seed):
        super().__init__(seed)
        self._threshold = None

    def _sets(self):
        splits = self.seed.splits
        attacker, held_out = relearn_subset(len(splits.forget), self.seed.seed)
        if len(held_out) < MIN_SUBSET:
            raise AttackUnavailable(f"relearning needs at least {2 * MIN_SUBSET} forget images; there are "
                                    f"{len(splits.forget)}")
        return splits.forget.subset(attacker), splits.forget.subset(held_out)

    def threshold(self, held_out) -> float:
        """Halfway from Retrain's to the Original's accuracy on the held-out forget images."""
        if self._threshold is None:
            if self.seed.original is None or self.seed.retrained is None:
                raise AttackUnavailable("relearning compares with the Original and Retrain, which this caller does "
                                        "not provide")
            splits = self.seed.splits
            original, retrained = (metrics.mean_or_nan(metrics.evaluate(model, held_out, splits.kind,
                                                                        splits.preprocess, self.seed.plan.device)[1])
                                   for model in (self.seed.original, self.seed.retrained))
            self._threshold = (original + retrained) / 2
        return self._threshold

    def score(self, cell: AttackedCell) -> dict[str, float]:
        attacker_set, held_out = self._sets()
        threshold = self.threshold(held_out)
        curve = recovery_curve(cell.model, attacker_set, held_out, self.seed.splits, self.seed.recipe,
                               self.seed.plan.device, self.seed.seed)
        if mlflow.active_run() is not None:
            for step, accuracy in enumerate(curve):
                mlflow.log_metric("relearn_curve", accuracy, step=step)
        steps = steps_to(curve, threshold)
        return {"relearn_steps": float(steps), "relearn_reached": float(steps <= STEPS),
                "relearn_auc": float(np.mean(curve))}

    @classmethod
    def note(cls, cells) -> str:
        return (f"relearning: a copy of the model fine-tuned for {STEPS} SGD steps (lr {LR:g}) on a seeded "
                f"{FRACTION:.0%} of the forget set; relearn steps is the number of steps until the accuracy on the "
                f"other forget images is halfway back from Retrain's to the Original's ({STEPS + 1}: not within the "
                f"budget, a censored count), relearn reached the share of seeds that got there within the budget, "
                f"relearn AUC the mean accuracy on them over the steps. Fewer steps or a higher AUC than Retrain's: "
                f"the forget set was hidden, not removed. ")

"""Random labels (Graves et al., "Amnesiac Machine Learning", AAAI 2021; "RL" in the SalUn and ℓ1-sparse
papers' tables): fine-tune on the forget images relabelled with a random wrong label, together with retain.

Graves et al. relabel the sensitive data "with randomly selected incorrect labels" and train on it for a few
steps; SalUn (Fan et al., ICLR 2024) defines the same loss with y′ ≠ y and adds the retain set, and its official
code (OPTML-Group/Unlearn-Saliency, `Classification/unlearn/RL.py`, CIFAR-10 branch) runs one epoch as every
forget batch with random labels, then every retain batch. mubench follows that loop and its hyperparameters
(the README's CIFAR-10 example: 10 epochs, SGD lr 0.013, momentum 0.9, weight decay 5e-4; the MultiStepLR
milestones at epochs 91 and 136 never trigger in 10 epochs, so the lr is constant).

Where paper and code differ: the code draws the new label uniformly over all classes (`torch.randint`), so about
1/C of the "random" labels are the true one; mubench follows the papers and draws uniformly over the C − 1 wrong
classes, afresh for every batch. Multi-label tasks: every attribute of a forgotten image is flipped (1 − y), the
wrong label of each attribute. Batches are the task recipe's (official: 256).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mubench.unlearn.api import UnlearnContext, UnlearnData, register_method
from mubench.core.search import IntRange, LogUniform
from mubench.unlearn.loop import LoopConfig, LoopUnlearner
from mubench.unlearn.method_tools import RelabelledForgetThenRetain
from mubench.core.ranges import BatchSize, Decay, Epochs, Momentum, Rate


@register_method("random-label")
class RandomLabel(LoopUnlearner):
    """Fine-tune on forget with random wrong labels, then on retain, every epoch (Graves et al. 2021)."""

    @dataclass(frozen=True)
    class Config(LoopConfig):
        epochs: Epochs = 10  # passes over forget then retain; SalUn official README's CIFAR-10 example (RL's loop)
        lr: Rate = 0.013  # SGD; the same example, so SalUn without its mask is exactly this method
        optimizer: Literal["sgd", "adam"] = "sgd"  # SalUn official code
        momentum: Momentum = 0.9  # SalUn official code (arg_parser default)
        weight_decay: Decay = 5e-4  # SalUn official code (arg_parser default)
        schedule: Literal["cosine", "constant"] = "constant"  # official milestones (91, 136) never reached
        batch_size: BatchSize = 0  # forget and retain batch size; 0: the task recipe's (official: 256)
    search_space = {"lr": LogUniform(1e-3, 1e-1), "epochs": IntRange(1, 10)}  # mubench tune: lr and passes

    def batches(self, data: UnlearnData, ctx: UnlearnContext) -> RelabelledForgetThenRetain:
        return RelabelledForgetThenRetain.of(data, self.config.batch_size, ctx.seed)

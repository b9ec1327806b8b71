"""The helpers methods share (`mubench.unlearn.method_tools`, `mubench.unlearn.loop`, `mubench.core.losses`): what each promises a
method author, checked by hand on tiny inputs."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import pytest
import torch

from mubench.unlearn import loop

from mubench.unlearn import method_tools
from mubench.data.splits import Preprocess
from mubench.core.losses import TaskKind, distill_kl
from mubench.unlearn.protocol import unlearn_data
from mubench.kits.method_kit import toy_cell, toy_splits

CPU = torch.device("cpu")


def test_wrong_labels_draw_from_the_generator_they_are_given_only():
    labels = torch.arange(40) % 5
    drawn = []
    for global_seed in (0, 1):
        torch.manual_seed(global_seed)
        drawn.append(method_tools.wrong_labels(labels, 5, False, torch.Generator().manual_seed(7)))
    assert torch.equal(drawn[0], drawn[1])
    assert not torch.equal(drawn[0], method_tools.wrong_labels(labels, 5, False, torch.Generator().manual_seed(8)))


def test_relabelled_forget_then_retain_reads_augmented_loaders_shuffled_from_its_seed():
    splits = dataclasses.replace(toy_splits(), preprocess=Preprocess((0.5,) * 3, (0.5,) * 3, "crop-flip"))
    data = unlearn_data(splits, 16, CPU)

    def retain_batches(seed):
        epoch = method_tools.RelabelledForgetThenRetain.of(data, 0, seed)
        assert epoch.forget.augment and epoch.retain.augment
        return [x for x, _ in epoch][len(epoch.forget):]
    same, again, other = retain_batches(3), retain_batches(3), retain_batches(4)
    assert all(torch.equal(a, b) for a, b in zip(same, again))
    assert not all(torch.equal(a, b) for a, b in zip(same, other))


def test_multilabel_distillation_kl_is_one_value_per_sample():
    student = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    teacher = torch.tensor([[0.8, 0.3], [0.8, 0.3]])

    def kl(t, z):
        s = 1 / (1 + math.exp(-z))
        return t * math.log(t / s) + (1 - t) * math.log((1 - t) / (1 - s))
    per_sample = distill_kl(student, teacher, TaskKind.MULTILABEL)
    assert per_sample.tolist() == pytest.approx([(kl(0.8, 0.5) + kl(0.3, -1.0)) / 2, (kl(0.8, 2.0) + kl(0.3, 0.0)) / 2])


class OneBatch(loop.LoopUnlearner):
    """Fine-tuning on a single retain batch per epoch, reading the learning rate of each step."""

    @dataclass(frozen=True)
    class Config(loop.LoopConfig):
        epochs: int = 3  # three steps in all
        lr: float = 0.1  # a round number to read back

    def batches(self, data, ctx):
        return [next(iter(data.loader("retain", batch_size=8)))]


def test_the_cosine_schedule_spans_every_step_even_with_one_batch_per_epoch(monkeypatch):
    optimizers, rates = [], []
    real = loop.make_optimizer
    monkeypatch.setattr(loop, "make_optimizer", lambda *a, **k: optimizers.append(real(*a, **k)) or optimizers[-1])

    class Spy(OneBatch):
        def batch_loss(self, model, batch, data, ctx):
            rates.append(optimizers[0].param_groups[0]["lr"])
            return super().batch_loss(model, batch, data, ctx)
    cell = toy_cell()
    Spy(OneBatch.Config()).unlearn(cell.model(), cell.data, cell.context())
    assert rates == pytest.approx([0.1, 0.1 * 0.75, 0.1 * 0.25])  # ½(1 + cos(π·s/3)) for s = 0, 1, 2


def test_a_loop_config_left_at_its_defaults_is_what_contributing_promises():
    """CONTRIBUTING: "A `LoopConfig` field you do not declare keeps its default: 2 epochs, SGD at lr 1e-3 with
    momentum 0.9 and weight decay 5e-4, a cosine schedule over all steps, the task recipe's batch size"."""
    config = loop.LoopConfig()
    assert (config.epochs, config.optimizer, config.lr, config.momentum, config.weight_decay, config.schedule,
            config.batch_size) == (2, "sgd", 1e-3, 0.9, 5e-4, "cosine", 0)


def test_a_methods_loader_by_default_is_shuffled_unaugmented_from_seed_zero_and_keeps_the_last_batch():
    splits = dataclasses.replace(toy_splits(), preprocess=Preprocess((0.5,) * 3, (0.5,) * 3, "crop-flip"))
    loader = unlearn_data(splits, 16, CPU).loader("retain")
    assert loader.shuffle and not loader.augment and not loader.drop_last and loader.batch_size == 16
    x, _ = next(iter(loader))
    first = torch.randperm(len(splits.retain), generator=torch.Generator().manual_seed(0))[:16]
    assert torch.equal(x, splits.preprocess.to_input(splits.retain.images[first]))  # as stored, never warped


def test_a_subset_loader_is_shuffled_and_augmented_from_its_seed():
    """What UNSIR and Bad Teaching read their retain subset through (method_tools.split_loader)."""
    splits = dataclasses.replace(toy_splits(), preprocess=Preprocess((0.5,) * 3, (0.5,) * 3, "crop-flip"))
    data = unlearn_data(splits, 16, CPU)
    loader = method_tools.split_loader(splits.retain, data, 0, seed=5)
    assert loader.shuffle and loader.augment and loader.batch_size == 16
    same = method_tools.split_loader(splits.retain, data, 0, seed=5)
    assert torch.equal(next(iter(loader))[0], next(iter(same))[0])
    assert not torch.equal(next(iter(loader))[0], next(iter(method_tools.split_loader(splits.retain, data, 0, 6)))[0])

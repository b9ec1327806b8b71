"""Shadow models of the LiRA attack (mubench.attacks.lira): the evaluator's models, never a method's.

Shadow `i` of a task × backbone × seed is trained with the task's recipe and backbone on retain ∪ a seeded random
half of the attack's pool, forget ∪ the held-out role (`unseen` where the task has one, else `test`: the MIA's
non-members, as `metrics.score_model` reads them). So every forget and held-out example is IN for about half of the
shadows and OUT for the rest, and retain, always IN, plays the part it plays for the Original. The half is drawn from
(seed, i) alone, so a shadow is the same whatever K and whichever methods a run compares.

What the attack needs of a shadow is kept, not its weights: φ of every pool example under the shadow and which of
them it trained on (a few KiB in the model cache, under a key built like the references' with `shadow-<i>` as role).
U-LiRA (mubench.attacks.ulira) unlearns the shadows themselves, so with `--attack ulira` their weights are cached too
(`shadow-<i>-model`), and, for the Retrain row, each shadow's Retrain on retain alone (`shadow-<i>-retrain`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mubench.attacks.base import shadow_need
from mubench.train.backbones import build_backbone
from mubench.train.cache import ModelCache
from mubench.data.splits import BatchLoader, Preprocess, Split, Splits
from mubench.harness.keys import shadow_fields
from mubench.core.losses import TaskKind
from mubench.core.progress import bar as progress_bar
from mubench.core.seeds import seed_everything
from mubench.train.training import train_reference
from mubench.data.tasks import Recipe

MEMBERSHIP_SALT = 0x51AD  # keeps the shadows' halves apart from any other use of (seed, index) as a seed


def held_out_role(splits: Splits) -> str:
    """The attack's non-members: the task's separate `unseen` role where it has one, else `test`."""
    return "unseen" if splits.unseen is not None else "test"


def attack_pool(splits: Splits) -> Split:
    """forget ∪ the held-out role, forget first: the examples the shadows are IN or OUT on."""
    held_out = splits.role(held_out_role(splits))
    return Split(torch.cat([splits.forget.images, held_out.images]),
                 torch.cat([splits.forget.labels, held_out.labels]), splits.forget.ids + held_out.ids)


def shadow_members(pool_size: int, seed: int, index: int) -> np.ndarray:
    """Which pool examples shadow `index` trains on: a seeded random half (⌊n/2⌋ of them)."""
    rng = np.random.default_rng([MEMBERSHIP_SALT, seed, index])
    member = np.zeros(pool_size, bool)
    member[rng.permutation(pool_size)[: pool_size // 2]] = True
    return member


def shadow_seed(seed: int, index: int) -> int:
    """The torch seed of shadow `index` (its initialisation and batch order), apart from the references' `seed`."""
    return int(np.random.SeedSequence([MEMBERSHIP_SALT, seed, index, 1]).generate_state(1)[0] % 2**31)


def shadow_training_set(splits: Splits, seed: int, index: int) -> tuple[Split, np.ndarray]:
    """retain ∪ shadow `index`'s half of the pool, and the membership mask over the pool."""
    pool = attack_pool(splits)
    member = shadow_members(len(pool), seed, index)
    chosen = pool.subset(torch.from_numpy(np.flatnonzero(member)))
    data = Split(torch.cat([splits.retain.images, chosen.images]), torch.cat([splits.retain.labels, chosen.labels]),
                 splits.retain.ids + chosen.ids)
    return data, member


@torch.no_grad()
def confidence_logits(model: nn.Module, split: Split, kind: TaskKind, preprocess: Preprocess, device: torch.device,
                      batch_size: int = 256) -> np.ndarray:
    """φ = log(p / (1 − p)) of each example's true label, p its softmax confidence (multi-label: p of the true
    value of each attribute, φ averaged over attributes), in eval mode without augmentation. Computed from the
    logits (z_y − logsumexp of the other logits; ±z per attribute) so that it does not saturate at p ≈ 1."""
    model.eval()
    out = []
    for x, y in BatchLoader(split, preprocess, batch_size, device=device):
        z = model(x).double()
        if kind == TaskKind.MULTILABEL:
            phi = torch.where(y > 0.5, z, -z).mean(dim=1)
        else:
            true = z.gather(1, y[:, None]).squeeze(1)
            phi = true - z.scatter(1, y[:, None], float("-inf")).logsumexp(dim=1)
        out.append(phi.cpu())
    return torch.cat(out).numpy() if out else np.zeros(0)


def train_shadow_model(model: nn.Module, splits: Splits, recipe: Recipe, device: torch.device, seed: int, index: int,
                       retain_only: bool = False, progress=None, desc: str = "shadow") -> float:
    """Train `model` (fresh, built right after `seed_everything(shadow_seed(seed, index))`) as shadow `index`, or with
    `retain_only` as that shadow's Retrain (retain alone, the same seed); return the seconds it took."""
    data = splits.retain if retain_only else shadow_training_set(splits, seed, index)[0]
    return train_reference(model, data, splits.kind, splits.preprocess, recipe, device, shadow_seed(seed, index),
                           progress, desc)


def train_shadow(splits: Splits, recipe: Recipe, make_model, device: torch.device, seed: int, index: int,
                 progress=None, desc: str = "shadow") -> tuple[np.ndarray, np.ndarray, float]:
    """Train shadow `index` (a fresh `make_model()`, seeded) and return (φ on the pool, membership mask, seconds)."""
    seed_everything(shadow_seed(seed, index))
    model = make_model()
    seconds = train_shadow_model(model, splits, recipe, device, seed, index, progress=progress, desc=desc)
    phi = confidence_logits(model, attack_pool(splits), splits.kind, splits.preprocess, device)
    return phi, shadow_members(len(attack_pool(splits)), seed, index), seconds


def shadow_model(plan, splits: Splits, recipe: Recipe, backbone: str, seed: int, index: int,
                 retain_only: bool = False) -> tuple[nn.Module, dict, bool]:
    """Shadow `index`'s weights (or, `retain_only`, its Retrain's) from the cache or trained and cached:
    (model in eval mode on the run's device, cache record, whether it came from the cache)."""
    seed_everything(shadow_seed(seed, index))
    model = build_backbone(backbone, splits.num_outputs, plan.head, plan.pretrained)
    part = "retrain" if retain_only else "model"
    record, hit = ModelCache(plan.cache_dir).get_or_train(
        shadow_fields(plan, splits, recipe, backbone, seed, index, part), model,
        lambda m: train_shadow_model(m, splits, recipe, plan.device, seed, index, retain_only,
                                     None if plan.quiet else progress_bar, f"shadow {index} {part} {backbone}"))
    return model.to(plan.device).eval(), record, hit


class ShadowEntry(nn.Module):
    """What the cache keeps of a shadow: φ on the pool and the membership mask (buffers, so ModelCache stores it)."""

    def __init__(self, pool_size: int):
        super().__init__()
        self.register_buffer("phi", torch.zeros(pool_size, dtype=torch.float64))
        self.register_buffer("member", torch.zeros(pool_size, dtype=torch.bool))


@dataclass
class ShadowSet:
    """K shadows of one task × backbone × seed, as the attack reads them."""
    phi: np.ndarray  # [K, pool]: φ of each pool example under each shadow
    member: np.ndarray  # [K, pool] bool: shadow k trained on example j
    n_forget: int  # the pool's first n_forget examples are the forget set, the rest the held-out role
    train_seconds: float  # training time of the K shadows, summed
    disk_bytes: int  # what their cache entries take
    trained: int  # how many were trained now (the rest came from the cache)


def shadow_set(plan, splits: Splits, recipe: Recipe, backbone: str, seed: int, count: int,
               indices=None) -> ShadowSet:
    """Shadows 0..count-1 from the cache, or trained and cached (`indices`: only those, e.g. one Ray task's). Under
    an attack that needs shadow models (U-LiRA) each shadow's weights are cached too, and its φ is read from them."""
    cache = ModelCache(plan.cache_dir)
    keep_models = shadow_need(plan.attacks) == "models"
    pool_size = len(splits.forget) + len(splits.role(held_out_role(splits)))
    phis, members, seconds, size, trained = [], [], 0.0, 0, 0
    for index in range(count) if indices is None else indices:
        entry = ShadowEntry(pool_size)

        def train(holder: nn.Module, index=index) -> float:
            if keep_models:
                model, model_record, _ = shadow_model(plan, splits, recipe, backbone, seed, index)
                phi = confidence_logits(model, attack_pool(splits), splits.kind, splits.preprocess, plan.device)
                member, took = shadow_members(pool_size, seed, index), model_record["train_seconds"]
            else:
                phi, member, took = train_shadow(
                    splits, recipe, lambda: build_backbone(backbone, splits.num_outputs, plan.head, plan.pretrained),
                    plan.device, seed, index, None if plan.quiet else progress_bar, f"shadow {index} {backbone}")
            holder.phi.copy_(torch.from_numpy(phi))
            holder.member.copy_(torch.from_numpy(member))
            return took
        fields = shadow_fields(plan, splits, recipe, backbone, seed, index)
        record, hit = cache.get_or_train(fields, entry, train)
        if keep_models:
            model_paths = cache.paths(cache.key(shadow_fields(plan, splits, recipe, backbone, seed, index, "model")))
            if not all(path.exists() for path in model_paths):  # a φ entry cached by a LiRA run, without weights
                shadow_model(plan, splits, recipe, backbone, seed, index)
            size += sum(os.path.getsize(path) for path in model_paths)
        phis.append(entry.phi.numpy().copy())
        members.append(entry.member.numpy().copy())
        seconds += record["train_seconds"]
        size += sum(os.path.getsize(path) for path in cache.paths(record["key"]))
        trained += not hit
    return ShadowSet(np.array(phis), np.array(members), len(splits.forget), seconds, size, trained)

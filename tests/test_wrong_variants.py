"""The behaviour checks of tests/test_baselines.py must catch plausible wrong implementations.

Each variant patches one method (monkeypatch, undone after the test) the way a buggy implementation would
differ from its paper, and the named check must fail on it. tests/test_baselines.py runs the same checks on the
real methods, where they pass.
"""
import dataclasses

import pytest
import torch

import mubench.methods.bad_teaching as bad_teaching_module
import mubench.methods.unsir as unsir_module
from mubench.unlearn.api import METHODS
from mubench.data.splits import Split
from mubench.core.losses import distill_kl, soft_predictions, task_loss
from mubench.unlearn.method_tools import last_stages, reinitialise
from mubench.kits.method_kit import single_thread, toy_cell

import test_baselines as checks


def neggrad_on_retain(mp):
    cls = METHODS.get("neggrad")
    mp.setattr(cls, "batches", lambda self, data, ctx: data.loader("retain", shuffle=True, seed=ctx.seed))


def neggrad_plus_without_forget_term(mp):
    def batch_loss(self, model, batch, data, ctx):
        (x_retain, y_retain), _ = batch
        return self.config.beta * task_loss(model(x_retain), y_retain, data.kind)
    mp.setattr(METHODS.get("neggrad+"), "batch_loss", batch_loss)


def neggrad_plus_forget_term_weighted_zero(mp):  # forwards the forget batch, but β = 1 in effect
    def batch_loss(self, model, batch, data, ctx):
        (x_retain, y_retain), (x_forget, y_forget) = batch
        return task_loss(model(x_retain), y_retain, data.kind) - 0.0 * task_loss(model(x_forget), y_forget, data.kind)
    mp.setattr(METHODS.get("neggrad+"), "batch_loss", batch_loss)


def finetune_on_retain_and_forget(mp):
    def batches(self, data, ctx):
        both = Split(torch.cat([data.retain.images, data.forget.images]),
                     torch.cat([data.retain.labels, data.forget.labels]), data.retain.ids + data.forget.ids)
        return type(data)(both, data.forget, data.val, data.kind, data.num_outputs, data.preprocess,
                          data.batch_size, data.device).loader("retain", shuffle=True, seed=ctx.seed)
    mp.setattr(METHODS.get("finetune"), "batches", batches)


def eu_k_never_trains(mp):
    def unlearn(self, model, data, ctx):
        self.prepare(model, data, ctx)
        return model
    mp.setattr(METHODS.get("eu-k"), "unlearn", unlearn)


def eu_k_trains_only_the_head(mp):
    cls = METHODS.get("eu-k")
    mp.setattr(cls, "prepare", lambda self, model, data, ctx: reinitialise(model, last_stages(model, self.config.k,
                                                                                              "eu-k")))
    mp.setattr(cls, "trained_modules", lambda self, model: [model.head])


def eu_k_pytorch_default_init(mp):
    def prepare(self, model, data, ctx):
        for stage in self.trained_modules(model):
            for module in stage.modules():
                if callable(getattr(module, "reset_parameters", None)):
                    module.reset_parameters()
    mp.setattr(METHODS.get("eu-k"), "prepare", prepare)


def eu_k_without_reinitialising(mp):  # CF-k under EU-k's name (the DLFD authors' code)
    mp.setattr(METHODS.get("eu-k"), "prepare", lambda self, model, data, ctx: None)


def unsir_without_noise_in_impair(mp):
    mp.setattr(unsir_module.RetainWithNoise, "__iter__", lambda self: iter(self.retain))


def unsir_impair_on_noise_only(mp):  # the DLFD authors' variant
    def batches(self):
        for b, _ in enumerate(self.retain):
            part = slice(b * self.per_batch, (b + 1) * self.per_batch)
            yield self.noise[part], self.labels[part]
    mp.setattr(unsir_module.RetainWithNoise, "__iter__", batches)


def unsir_penalty_mean_over_elements(mp):
    mp.setattr(unsir_module, "noise_loss",
               lambda logits, labels, noise, l2, kind: -task_loss(logits, labels, kind) + l2 * noise.pow(2).mean())


def unsir_single_noise_round(mp):  # the DLFD authors' 1 x 8 steps
    original = unsir_module.UNSIR.learn_noise

    def learn_noise(self, model, noise, labels, kind):
        return original(type(self)(dataclasses.replace(self.config, noise_epochs=1)), model, noise, labels, kind)
    mp.setattr(unsir_module.UNSIR, "learn_noise", learn_noise)


def bad_teaching_without_retain_rows(mp):
    cls = METHODS.get("bad-teaching")
    original = cls.unlearning_set

    def unlearning_set(self, data, seed):
        full = original(self, data, seed)
        keep = torch.nonzero(full.labels == 1.0).flatten()
        return full.subset(keep)
    mp.setattr(cls, "unlearning_set", unlearning_set)


def bad_teaching_loss_on_forget_rows_only(mp):
    def loss(student_logits, competent_logits, incompetent_logits, is_forget, kind, temperature=1.0):
        per_sample = distill_kl(student_logits, soft_predictions(incompetent_logits, kind, temperature), kind,
                                temperature) / student_logits.shape[1]
        return (per_sample * is_forget.float()).mean()
    mp.setattr(bad_teaching_module, "bad_teaching_loss", loss)


def bad_teaching_batchmean_times_t2(mp):  # the SCRUB-style DistillKL instead of F.kl_div's 'mean'
    def loss(student_logits, competent_logits, incompetent_logits, is_forget, kind, temperature=1.0):
        flag = is_forget.float().view(-1, 1)
        target = (flag * soft_predictions(incompetent_logits, kind, temperature)
                  + (1 - flag) * soft_predictions(competent_logits, kind, temperature))
        return distill_kl(student_logits, target, kind, temperature).mean() * temperature ** 2
    mp.setattr(bad_teaching_module, "bad_teaching_loss", loss)


def scrub_without_max_pass(mp):
    cls = METHODS.get("scrub")
    original = cls.unlearn

    def unlearn(self, model, data, ctx):
        return original(type(self)(dataclasses.replace(self.config, max_steps=0)), model, data, ctx)
    mp.setattr(cls, "unlearn", unlearn)


def scrub_max_step_descends(mp):
    cls = METHODS.get("scrub")
    original = cls.step_loss
    mp.setattr(cls, "step_loss", lambda self, direction, *args: original(self, "min", *args))


def scrub_max_step_also_ascends_ce(mp):
    cls = METHODS.get("scrub")
    original = cls.step_loss

    def step_loss(self, direction, student, teacher, batch, kind):
        loss = original(self, direction, student, teacher, batch, kind)
        return loss - task_loss(student(batch[0]), batch[1], kind) if direction == "max" else loss
    mp.setattr(cls, "step_loss", step_loss)


def scrub_min_then_max(mp):
    cls = METHODS.get("scrub")
    mp.setattr(cls, "unlearn", _min_then_max)


def _min_then_max(self, model, data, ctx):
    from mubench.unlearn.method_tools import frozen_copy
    from mubench.train.training import fit, make_optimizer
    cfg, teacher = self.config, frozen_copy(model)
    optimizer = make_optimizer(model.parameters(), "sgd", cfg.lr, cfg.momentum, cfg.weight_decay)
    forget = data.loader("forget", batch_size=2 * data.batch_size, seed=ctx.seed)
    retain = data.loader("retain", seed=ctx.seed)
    for epoch in range(cfg.epochs):
        for direction, batches in (("min", retain), ("max", forget)):
            if direction == "max" and epoch >= cfg.max_steps:
                continue
            fit(model, lambda _: batches, lambda m, b: self.step_loss(direction, m, teacher, b, data.kind),
                optimizer, 1)
    return model


VARIANTS = [
    ("finetune on retain and forget", finetune_on_retain_and_forget, checks.check_finetune),
    ("neggrad ascends on retain", neggrad_on_retain, checks.check_neggrad),
    ("neggrad+ without forget term", neggrad_plus_without_forget_term, checks.check_neggrad_plus),
    ("neggrad+ forget term weighted 0", neggrad_plus_forget_term_weighted_zero, checks.check_neggrad_plus),
    ("neggrad+ without forget term (loss)", neggrad_plus_without_forget_term, checks.check_neggrad_plus_loss),
    ("eu-k never trains", eu_k_never_trains, checks.check_eu_k),
    ("eu-k trains only the head", eu_k_trains_only_the_head, checks.check_eu_k),
    ("eu-k PyTorch default init", eu_k_pytorch_default_init, checks.check_eu_k),
    ("eu-k without re-initialising", eu_k_without_reinitialising, checks.check_eu_k),
    ("unsir without noise in impair", unsir_without_noise_in_impair, checks.check_unsir),
    ("unsir impair on noise only", unsir_impair_on_noise_only, checks.check_unsir),
    ("unsir single noise round", unsir_single_noise_round, checks.check_unsir),
    ("unsir penalty mean over elements", unsir_penalty_mean_over_elements, checks.check_unsir_noise_step),
    ("bad-teaching without retain rows", bad_teaching_without_retain_rows, checks.check_bad_teaching),
    ("bad-teaching loss ignores retain rows", bad_teaching_loss_on_forget_rows_only, checks.check_bad_teaching_loss),
    ("bad-teaching batchmean x T^2", bad_teaching_batchmean_times_t2, checks.check_bad_teaching_loss),
    ("scrub without max pass", scrub_without_max_pass, checks.check_scrub),
    ("scrub max step descends", scrub_max_step_descends, checks.check_scrub),
    ("scrub max step also ascends CE", scrub_max_step_also_ascends_ce, checks.check_scrub_losses),
    ("scrub min pass before max pass", scrub_min_then_max, checks.check_scrub),
]


@pytest.mark.parametrize("patch, check", [v[1:] for v in VARIANTS], ids=[v[0] for v in VARIANTS])
def test_check_fails_on_wrong_variant(patch, check, monkeypatch):
    patch(monkeypatch)
    with single_thread(), pytest.raises(AssertionError):
        check(toy_cell())

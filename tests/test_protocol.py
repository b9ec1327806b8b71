"""One protocol for every caller: a cell, a tuning trial, U-LiRA's shadows and the conformance kit hand a method the
same things and refuse the same results."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from mubench.unlearn import protocol

from mubench.attacks import ulira
from mubench.unlearn.api import METHODS, Unlearner
from mubench.core.errors import MubenchError
from mubench.harness.plan import MethodSpec, RunPlan
from mubench.kits.method_kit import TOY_RECIPE, run_on_toy, toy_cell, toy_model
from test_attack_known_answers import K, class_wise_splits, memberships, split

CPU = torch.device("cpu")


class Probe(Unlearner):
    """Reads the monitor once and returns what `answer` makes of the model."""
    registered_name = "probe"  # as METHODS names a registered class
    readings: list = []
    answer = staticmethod(lambda model: model)

    def unlearn(self, model, data, ctx):
        Probe.readings.append((data.forget, ctx.monitor(model)))
        return Probe.answer(model)


@pytest.fixture
def shadow_run(monkeypatch, tmp_path):
    """U-LiRA's shadow unlearning on the class-wise toy split, with `Probe` as the cell's method."""
    splits = splits_with_val()
    monkeypatch.setitem(METHODS._entries, "probe", Probe)  # registered for this test only
    monkeypatch.setattr(ulira, "shadow_model", lambda *args, retain_only=False, **kwargs: (
        toy_model(3, width=4, seed=args[-1]), {"train_seconds": 0.0}, True))
    monkeypatch.setattr(Probe, "readings", [])
    pool = len(splits.forget) + len(splits.unseen)
    shadow_set = ulira.ShadowSet(np.zeros((K, pool)), memberships(pool), len(splits.forget), 0.0, 0, 0)
    plan = RunPlan(methods=[], tasks=[], backbones=[], seeds=[0], out=tmp_path, tracking_uri="", cache_dir=tmp_path,
                   quiet=True, attacks=("lira", "ulira"), shadows=K)
    return lambda: ulira.unlearned_shadow_phi(plan, MethodSpec("probe"), None, splits, TOY_RECIPE, "toy", 0, shadow_set)


def splits_with_val():
    """The class-wise toy split with val large enough for the monitor's 10-fold attack on the forgotten class."""
    return dataclasses.replace(class_wise_splits(), val=split([0, 1, 2] * 10, "val", 2))


def test_a_shadows_monitor_reads_the_forgotten_classes_as_a_cells_does(shadow_run):
    shadow_run()
    splits = splits_with_val()
    assert len(Probe.readings) == K
    forget, reading = Probe.readings[0]
    model = toy_model(3, width=4, seed=0)
    as_a_cell = protocol.make_monitor(forget, splits.val, splits.kind, splits.preprocess, CPU, (1,))(model)
    blind = protocol.make_monitor(forget, splits.val, splits.kind, splits.preprocess, CPU)(model)
    assert tuple(reading) == tuple(as_a_cell) and not math.isclose(reading.val_accuracy, blind.val_accuracy)


def _nan(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        next(model.parameters()).fill_(math.nan)
    return model


@pytest.mark.parametrize("answer, says", [(lambda model: None, "returned a NoneType from unlearn()"),
                                          (_nan, "returned a model with non-finite weights")])
def test_a_shadows_result_is_refused_as_a_cells_is(shadow_run, monkeypatch, answer, says):
    monkeypatch.setattr(Probe, "answer", staticmethod(answer))
    with pytest.raises(MubenchError, match=f"method 'probe' {says}"):
        shadow_run()


def test_the_kit_unlearns_a_private_copy_in_eval_mode_and_fails_a_refused_result(monkeypatch):
    cell = toy_cell()
    before = {k: v.clone() for k, v in cell.original.state_dict().items()}
    monkeypatch.setattr(Probe, "answer", staticmethod(_nan))
    with pytest.raises(MubenchError, match="method 'probe' returned a model with non-finite weights"):
        run_on_toy(Probe, cell)
    assert all(torch.equal(before[k], v) for k, v in cell.original.state_dict().items())
    monkeypatch.setattr(Probe, "answer", staticmethod(lambda model: model.train()))
    assert run_on_toy(Probe, cell).training is False


def test_a_lazy_layer_is_not_taken_for_non_finite_weights():
    protocol.refuse_non_finite("m", nn.Sequential(nn.Flatten(), nn.LazyLinear(1)), [])


def test_a_long_logged_curve_reaches_the_run_whole_in_batches_mlflow_accepts(tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    from mubench.core.tracking import open_store
    open_store(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path)
    curve = [mlflow.entities.Metric("curve", float(step), 0, step) for step in range(2001)]
    with mlflow.start_run() as run:
        protocol.log_to_active_run(curve)
    history = MlflowClient().get_metric_history(run.info.run_id, "curve")
    assert sorted(m.step for m in history) == list(range(2001))


def test_only_a_method_that_declares_no_multilabel_support_is_refused_a_multilabel_task():
    from mubench.core.losses import TaskKind
    from mubench.kits.method_kit import toy_splits

    class Supports(Unlearner):
        def unlearn(self, model, data, ctx):
            return model

    class SingleLabel(Supports):
        supports_multilabel = False
    multilabel, multiclass = toy_splits(TaskKind.MULTILABEL), toy_splits()
    protocol.refuse_multilabel(Supports(), multilabel)
    protocol.refuse_multilabel(SingleLabel(), multiclass)
    with pytest.raises(MubenchError, match="single-label classification only"):
        protocol.refuse_multilabel(SingleLabel(), multilabel)

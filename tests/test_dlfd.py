"""DLFD (methods/dlfd.py) on the toy cell: the perturbation, the CE schedule, the dynamic strategy, modes, ranges."""
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from mubench.api import METHODS, MonitorReading
from mubench.errors import MubenchError
from mubench.losses import TaskKind
from mubench.methods.dlfd import DLFD, ot_distance
from mubench.testing import toy_cell

BATCHES = 12  # toy retain set (96) in batches of 8


@pytest.fixture(scope="module")
def cell():
    return toy_cell()


def batch(cell, role, n=16):
    return next(iter(cell.data.loader(role, shuffle=False, batch_size=n)))


def bounds(cell):
    return cell.data.preprocess.input_range()


def scripted(readings):
    """A monitor returning readings[i] (fs, val_acc) on its i-th call, the last one forever after."""
    calls = []

    def monitor(model):
        fs, acc = readings[min(len(calls), len(readings) - 1)]
        calls.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return MonitorReading(fs, 0.5 + fs / 2, acc)
    return monitor, calls


def run(cell, monitor=None, **fields):
    """Unlearn with an instrumented DLFD: returns (model, events, logged metrics)."""
    dlfd = DLFD(DLFD.Config(batch_size=8, steps=2, **fields))
    events, logged = [], {}
    perturb, update = dlfd.perturb, dlfd.update

    def perturb_hook(*args):
        events.append("perturb")
        return perturb(*args)

    def update_hook(model, optimizer, x, y, kind):
        events.append("update")
        return update(model, optimizer, x, y, kind)
    dlfd.perturb, dlfd.update = perturb_hook, update_hook
    ctx = cell.context(monitor=monitor, log=lambda name, value, step: logged.setdefault(name, []).append(value))
    wrapped = ctx._monitor
    ctx._monitor = lambda model: (events.append("monitor"), wrapped(model))[1]
    return dlfd.unlearn(cell.model(), cell.data, ctx), events, logged


def test_registered_with_ablations_and_task_defaults():
    assert METHODS.get("dlfd") is DLFD
    for variant in DLFD.ablations.values():
        DLFD.Config(**variant)
    assert DLFD.task_defaults["mufac"]["stop_threshold"] == pytest.approx(2 * 0.15)  # doubled to our FS scale
    assert DLFD.task_defaults["rafdb"]["max_fs"] == pytest.approx(2 * 0.23)


def test_bad_choice_is_a_clear_error():
    with pytest.raises(MubenchError, match="dlfd.ot='wasserstein'.*exact, sinkhorn"):
        DLFD.Config(ot="wasserstein")


@pytest.mark.parametrize("ot_kind", ["exact", "sinkhorn"])
def test_ot_term_alone_moves_retain_features_away_from_forget(cell, ot_kind):
    dlfd = DLFD(DLFD.Config(ce_schedule="off", ot=ot_kind))
    model = cell.model().eval()
    (x_r, y_r), (x_f, _) = batch(cell, "retain"), batch(cell, "forget")
    with torch.no_grad():
        target = model.features(x_f)
        before = ot_distance(model.features(x_r), target, ot_kind)
    x_adv = dlfd.perturb(model, x_r, y_r, x_f, 0.0, cell.data.kind, bounds(cell))
    with torch.no_grad():
        after = ot_distance(model.features(x_adv), target, ot_kind)
    assert (x_adv - x_r).abs().max() > 0
    assert after > before


def test_perturbed_inputs_stay_in_the_valid_range(cell):
    dlfd = DLFD(DLFD.Config(alpha=5.0, steps=3))
    (x_r, y_r), (x_f, _) = batch(cell, "retain"), batch(cell, "forget")
    low, high = bounds(cell)
    x_adv = dlfd.perturb(cell.model(), x_r, y_r, x_f, 1.0, cell.data.kind, (low, high))
    assert (x_adv >= low - 1e-6).all() and (x_adv <= high + 1e-6).all()
    assert ((x_adv == low) | (x_adv == high)).float().mean() > 0.5  # alpha 5 hits the bounds: the clamp is doing it


@pytest.mark.parametrize("schedule, expected", [("linear", (0.5, 0.75, 1.0)), ("constant", (1.0, 1.0, 1.0)),
                                                ("off", (0.0, 0.0, 0.0))])
def test_ce_weight_first_middle_last(schedule, expected):
    dlfd = DLFD(DLFD.Config(lambda_start=0.5, lambda_end=1.0, ce_schedule=schedule))
    assert tuple(dlfd.ce_weight(b, 11) for b in (0, 5, 10)) == pytest.approx(expected)


def test_no_perturbation_after_the_monitor_reports_forgetting(cell):
    j = 4  # the j-th monitor call (after batch j) reads FS below the threshold
    monitor, _ = scripted([(0.9, 0.5)] * (j - 1) + [(0.05, 0.5)] + [(0.9, 0.5)])
    _, events, logged = run(cell, monitor, monitor_every=1, stop_threshold=0.1)
    assert events.count("update") == BATCHES
    after_stop = events[[i for i, e in enumerate(events) if e == "monitor"][j - 1]:]
    assert "perturb" not in after_stop
    assert events.count("perturb") == j
    assert logged["dlfd/stopped_at"] == [j] and logged["dlfd/perturbed_batches"] == [j]


def test_static_variant_never_monitors_nor_stops(cell):
    monitor, calls = scripted([(0.0, 0.5)])
    model, events, logged = run(cell, monitor, dynamic=False, stop_threshold=1.0)
    assert events.count("perturb") == BATCHES and not calls
    assert logged["dlfd/selected_best"] == [0.0]


def test_train_mode_for_updates_eval_mode_for_perturbation_and_at_the_end(cell):
    seen = []  # (phase, model.training) for every forward
    phase = ["?"]
    dlfd = DLFD(DLFD.Config(batch_size=16, steps=2, dynamic=False))
    perturb, update = dlfd.perturb, dlfd.update

    def tagged(name, fn):
        def inner(*args):
            phase[0] = name
            return fn(*args)
        return inner
    dlfd.perturb, dlfd.update = tagged("perturb", perturb), tagged("update", update)
    model = cell.model()
    model.body.register_forward_pre_hook(lambda module, args: seen.append((phase[0], module.training)))
    steps = []
    handle = register_optimizer_step_pre_hook(
        lambda opt, args, kwargs: steps.append(model.training))
    try:
        out = dlfd.unlearn(model, cell.data, cell.context())
    finally:
        handle.remove()
    assert steps and all(steps)
    assert {mode for p, mode in seen if p == "update"} == {True}
    assert {mode for p, mode in seen if p == "perturb"} == {False}
    assert not any(m.training for m in out.modules())


def test_best_checkpoint_by_val_accuracy_among_forgotten_enough(cell):
    readings = [(0.9, 0.99), (0.2, 0.5), (0.25, 0.8), (0.5, 0.95), (0.1, 0.6), (0.2, 0.7)]
    monitor, calls = scripted(readings)
    model, _, logged = run(cell, monitor, monitor_every=2, max_fs=0.3, stop_threshold=0.0)
    assert len(calls) == BATCHES // 2
    chosen = calls[2]  # (0.25, 0.8): best accuracy with FS <= 0.3; 0.99 and 0.95 have FS above it
    for name, value in model.state_dict().items():
        assert torch.equal(value, chosen[name]), name
    assert logged["dlfd/selected_step"] == [6] and logged["dlfd/selected_best"] == [1.0]


def test_last_state_when_no_checkpoint_qualifies(cell):
    monitor, calls = scripted([(0.9, 0.9)])
    model, _, logged = run(cell, monitor, monitor_every=3, max_fs=0.3, stop_threshold=0.0)
    for name, value in model.state_dict().items():
        assert torch.equal(value, calls[-1][name]), name  # the last monitor is after the last batch
    assert logged["dlfd/selected_best"] == [0.0]


def test_multilabel_and_logit_features_run():
    ml = toy_cell(TaskKind.MULTILABEL)
    dlfd = DLFD(DLFD.Config(batch_size=32, steps=2, features="logits", cost="sqeuclidean", dynamic=False))
    out = dlfd.unlearn(ml.model(), ml.data, ml.context())
    assert out(batch(ml, "val")[0]).shape == (16, ml.data.num_outputs)

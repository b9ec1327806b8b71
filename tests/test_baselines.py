"""Behaviour of each baseline on the toy cell, measured independently of the method's own code."""
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from mubench.api import METHODS
from mubench.errors import MubenchError
from mubench.harness import seed_everything
from mubench.losses import TaskKind, distill_kl
from mubench.testing import run_on_toy, single_thread, toy_cell


@pytest.fixture(autouse=True)
def _one_thread():
    with single_thread():
        yield


def inputs(cell, role):
    return cell.splits.preprocess.to_input(cell.splits.role(role).images)


def mean_loss(model, cell, role):
    with torch.no_grad():
        return F.cross_entropy(model.eval()(inputs(cell, role)), cell.splits.role(role).labels).item()


def accuracy(model, cell, role):
    with torch.no_grad():
        predicted = model.eval()(inputs(cell, role)).argmax(1)
    return (predicted == cell.splits.role(role).labels).float().mean().item()


def kl(teacher, student, x, temperature=1.0):
    """KL(teacher ‖ student) over softmax outputs, batch mean."""
    with torch.no_grad():
        return F.kl_div(F.log_softmax(student.eval()(x) / temperature, 1),
                        F.softmax(teacher.eval()(x) / temperature, 1), reduction="batchmean").item()


def unlearned(name, cell, **changes):
    """The toy cell's original after `name` with its default Config changed by `changes`."""
    cls = METHODS.get(name)
    return run_on_toy(cls, cell, dataclasses.replace(cls.Config(), **changes))


def stage_tensors(model, names):
    """name -> tensor for every parameter and buffer inside the named stages."""
    stages = dict(model.stages())
    return {f"{stage}.{key}": value for stage in names for module in stages[stage]
            for key, value in module.state_dict().items()}


# --- distill_kl (shared by Bad Teaching and SCRUB) -------------------------------------------------------

def test_distill_kl_known_answers():
    expected = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)  # KL((.5,.5) ‖ (.9,.1))
    multiclass = distill_kl(torch.tensor([[math.log(0.9), math.log(0.1)]]), torch.tensor([[0.5, 0.5]]),
                            TaskKind.MULTICLASS)
    multilabel = distill_kl(torch.tensor([[math.log(9.0), math.log(9.0)]]), torch.tensor([[0.5, 0.5]]),
                            TaskKind.MULTILABEL)  # sigmoid(log 9) = 0.9 on both attributes
    assert multiclass.item() == pytest.approx(expected, rel=1e-5)
    assert multilabel.item() == pytest.approx(expected, rel=1e-5)


# --- NegGrad, NegGrad+ -----------------------------------------------------------------------------------

def test_neggrad_raises_forget_loss_and_neggrad_plus_less_while_keeping_retain():
    cell = toy_cell()
    before = mean_loss(cell.original, cell, "forget")
    neggrad = unlearned("neggrad", cell, lr=0.05, epochs=10)  # enough ascent to leave the saturated softmax
    plus = unlearned("neggrad+", cell, lr=0.05, epochs=10)  # default beta = 0.999
    assert mean_loss(neggrad, cell, "forget") > 10 * before
    assert before < mean_loss(plus, cell, "forget") < mean_loss(neggrad, cell, "forget")
    assert accuracy(plus, cell, "retain") >= accuracy(cell.original, cell, "retain") - 0.05


# --- CF-k, EU-k ------------------------------------------------------------------------------------------

def test_cf_k_trains_only_the_last_k_stages():
    cell = toy_cell()
    names = [name for name, _ in cell.original.stages()]
    frozen, open_ = names[:-3], names[-3:]  # default k = 3
    result = unlearned("cf-k", cell)
    for key, value in stage_tensors(cell.original, frozen).items():
        assert torch.equal(value, stage_tensors(result, frozen)[key]), f"frozen {key} changed"
    changed = stage_tensors(result, open_)
    for key, value in stage_tensors(cell.original, open_).items():
        if value.is_floating_point():
            assert not torch.equal(value, changed[key]), f"{key} in the last k stages did not train"
    assert all(p.requires_grad for p in result.parameters())


def test_cf_k_rejects_k_beyond_the_backbone():
    cell = toy_cell()
    with pytest.raises(MubenchError, match="k must be between 1 and 4"):
        unlearned("cf-k", cell, k=9)


def test_eu_k_reinitialises_the_last_k_stages_and_keeps_the_rest():
    cell = toy_cell()
    eu_k = METHODS.get("eu-k")()
    names = [name for name, _ in cell.original.stages()]
    frozen, open_ = names[:-eu_k.config.k], names[-eu_k.config.k:]
    seed_everything(0)
    reset = cell.model()
    eu_k.reset_last_stages(reset)
    fresh = stage_tensors(reset, open_)
    for key, value in stage_tensors(cell.original, open_).items():
        assert not torch.equal(value, fresh[key]), f"{key} was not re-initialised"
    untrained = unlearned("eu-k", cell, epochs=0)  # same seed: unlearn starts from exactly this reset
    assert all(torch.equal(v, untrained.state_dict()[k]) for k, v in reset.state_dict().items())
    result = unlearned("eu-k", cell)
    for key, value in stage_tensors(cell.original, frozen).items():
        assert torch.equal(value, stage_tensors(reset, frozen)[key]), f"frozen {key} changed by the reset"
        assert torch.equal(value, stage_tensors(result, frozen)[key]), f"frozen {key} changed in training"


# --- UNSIR -----------------------------------------------------------------------------------------------

def test_unsir_noise_is_error_maximising():
    cell = toy_cell()
    unsir = METHODS.get("unsir")()
    x, y = next(iter(cell.data.loader("forget", shuffle=False)))
    model = cell.model().eval()
    start = unsir.initial_noise(tuple(x.shape), seed=0)
    learned = unsir.learn_noise(model, start, y, cell.data.kind)
    with torch.no_grad():
        assert F.cross_entropy(model(learned), y).item() > 2 * F.cross_entropy(model(start), y).item()
    assert torch.equal(unsir.initial_noise(tuple(x.shape), seed=0), start)  # learning leaves its start alone


def test_unsir_impair_batches_carry_every_noise_sample_once_per_epoch():
    from mubench.methods.unsir import RetainWithNoise
    cell = toy_cell()
    retain = cell.data.loader("retain", batch_size=32)
    noise, labels = torch.full((32, 3, 12, 12), 7.0), torch.arange(32) % 4
    batches = list(RetainWithNoise(retain, noise, labels))
    assert len(batches) == len(retain) == 3
    noise_rows = sum(int((x == 7.0).flatten(1).all(1).sum()) for x, _ in batches)
    assert noise_rows == 32 and sum(len(x) for x, _ in batches) == 96 + 32


# --- Bad Teaching ----------------------------------------------------------------------------------------

def test_bad_teaching_unlearning_set_holds_all_forget_samples_flagged():
    cell = toy_cell()
    bad = METHODS.get("bad-teaching")()
    unlearning = bad.unlearning_set(cell.data, seed=0)
    flags = dict(zip(unlearning.ids, unlearning.labels.tolist()))
    assert all(flags.get(i) == 1.0 for i in cell.splits.forget.ids)
    retained = [i for i, flag in flags.items() if flag == 0.0]
    assert set(retained) <= set(cell.splits.retain.ids) and len(retained) == round(0.3 * len(cell.splits.retain))


def test_bad_teaching_loss_follows_the_incompetent_teacher_on_forget_and_the_competent_on_retain():
    cell = toy_cell()
    bad = METHODS.get("bad-teaching")()
    t = bad.config.temperature
    student = cell.model().eval()
    competent, incompetent = bad.teachers(cell.model())
    x = inputs(cell, "forget")
    ones, zeros = torch.ones(len(x)), torch.zeros(len(x))
    assert bad.loss(student, competent, incompetent, (x, ones), cell.data.kind).item() == pytest.approx(
        kl(incompetent, student, x, t), rel=1e-4)
    assert bad.loss(student, competent, incompetent, (x, zeros), cell.data.kind).item() == pytest.approx(0, abs=1e-6)


def test_bad_teaching_moves_forget_to_the_incompetent_teacher_and_keeps_retain_with_the_original():
    cell = toy_cell()
    bad = METHODS.get("bad-teaching")()
    t = bad.config.temperature
    seed_everything(cell.seed)  # as run_on_toy, so these are the teachers unlearn builds
    _, incompetent = bad.teachers(cell.model())
    result = run_on_toy(type(bad), cell, bad.config)
    forget, retain = inputs(cell, "forget"), inputs(cell, "retain")
    assert kl(incompetent, result, forget, t) < 0.8 * kl(incompetent, cell.original, forget, t)
    assert kl(cell.original, result, retain) < 0.5 * kl(cell.original, result, forget)


# --- SCRUB -----------------------------------------------------------------------------------------------

def test_scrub_max_steps_raise_forget_kl_and_min_steps_lower_retain_kl():
    cell = toy_cell()
    scrub = METHODS.get("scrub")(dataclasses.replace(METHODS.get("scrub").Config(), lr=0.01))
    t = scrub.config.temperature
    student, ctx = cell.model(), cell.context()
    teacher = scrub.teacher(student)
    forget, retain = cell.data.loader("forget", seed=0), cell.data.loader("retain", seed=0)
    forget_x, retain_x = inputs(cell, "forget"), inputs(cell, "retain")

    optimizer = scrub.optimizer(student)
    forget_kl = [kl(teacher, student, forget_x, t)]
    for _ in range(10):
        scrub.phase("max", student, teacher, forget, optimizer, cell.data.kind, ctx)
        forget_kl.append(kl(teacher, student, forget_x, t))
    assert all(b > a for a, b in zip(forget_kl, forget_kl[1:])), forget_kl

    optimizer = scrub.optimizer(student)  # fresh, so no ascent momentum carries into the min steps
    before = kl(teacher, student, retain_x, t)
    for _ in range(3):
        scrub.phase("min", student, teacher, retain, optimizer, cell.data.kind, ctx)
    assert kl(teacher, student, retain_x, t) < 0.5 * before

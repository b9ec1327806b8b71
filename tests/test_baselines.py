"""Behaviour of each baseline on the toy cell, measured independently of the method's own code.

Each `check_*` raises AssertionError when a method does not behave as its paper defines it; the tests run them
on the real methods, and tests/test_wrong_variants.py runs them on deliberately broken variants, which must fail.
Expected values are computed by hand from each method's definition, never read from the code under test.
"""
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from mubench.unlearn.api import METHODS
from mubench.train.backbones import build_backbone
from mubench.core.errors import MubenchError
from mubench.core.losses import TaskKind, distill_kl
from mubench.unlearn.method_tools import endless, frozen_copy, last_stages, reinitialise, retain_subset
from mubench.kits.method_kit import run_on_toy, single_thread, toy_cell


@pytest.fixture(autouse=True)
def _one_thread():
    with single_thread():
        yield


# --- helpers ---------------------------------------------------------------------------------------------

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


def config(name, **changes):
    cls = METHODS.get(name)
    return dataclasses.replace(cls.Config(), **changes)


def unlearned(name, cell, **changes):
    """The toy cell's original after `name` with its default Config changed by `changes`, run as the harness runs
    it (seeded, then `unlearn` on a copy)."""
    return run_on_toy(METHODS.get(name), cell, config(name, **changes))


def stage_tensors(model, names):
    """name -> tensor for every parameter and buffer inside the named stages."""
    stages = dict(model.stages())
    return {f"{stage}.{key}": value for stage in names for module in stages[stage]
            for key, value in module.state_dict().items()}


def stage_parameters(model, names):
    stages = dict(model.stages())
    return {f"{stage}.{key}": value for stage in names for module in stages[stage]
            for key, value in module.named_parameters()}


class Recorder(nn.Module):
    """Wraps a model and records every forward: (train mode?, grad enabled?, the input rows)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.calls = model, []

    def forward(self, x):
        self.calls.append((self.training, torch.is_grad_enabled(), x.detach().clone()))
        return self.model(x)

    def stages(self):
        return self.model.stages()


def row_roles(cell, x):
    """'retain' / 'forget' for each row of `x` that is exactly a retain / forget input, 'other' otherwise."""
    table = {row.numpy().tobytes(): role for role in ("retain", "forget") for row in inputs(cell, role)}
    return [table.get(row.numpy().tobytes(), "other") for row in x]


def recorded_run(name, cell, **changes):
    """Run `name` on a recording copy of the original; return the training forwards' row roles, in order."""
    recorder = unlearned(name, dataclasses.replace(cell, original=Recorder(cell.original)), **changes)
    return [row_roles(cell, x) for training, grad, x in recorder.calls if training and grad], recorder


def batch_kind(roles):
    kinds = set(roles)
    return kinds.pop() if len(kinds) == 1 else "mixed"


def ce(logits, label):
    """Cross-entropy of one row of logits (a list of floats), by hand."""
    return math.log(sum(math.exp(v) for v in logits)) - logits[label]


def softmax(logits, temperature=1.0):
    exps = [math.exp(v / temperature) for v in logits]
    return [e / sum(exps) for e in exps]


def kl_rows(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q))


def linear(weight, bias=None):
    layer = nn.Linear(len(weight[0]), len(weight), bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        if bias is not None:
            layer.bias.copy_(torch.tensor(bias))
    return layer


# --- shared helpers (mubench.unlearn.method_tools) ----------------------------------------------------------------

def test_distill_kl_known_answers():
    expected = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)  # KL((.5,.5) ‖ (.9,.1))
    multiclass = distill_kl(torch.tensor([[math.log(0.9), math.log(0.1)]]), torch.tensor([[0.5, 0.5]]),
                            TaskKind.MULTICLASS)
    multilabel = distill_kl(torch.tensor([[math.log(9.0), math.log(9.0)]]), torch.tensor([[0.5, 0.5]]),
                            TaskKind.MULTILABEL)  # sigmoid(log 9) = 0.9 on both attributes
    assert multiclass.item() == pytest.approx(expected, rel=1e-5)
    assert multilabel.item() == pytest.approx(expected, rel=1e-5)


def test_endless_reshuffles_every_pass_and_never_stops():
    loader = toy_cell().data.loader("forget", batch_size=8, seed=3)
    stream = endless(loader)
    passes = [torch.cat([next(stream)[1] for _ in range(len(loader))]) for _ in range(3)]
    assert all(sorted(p.tolist()) == sorted(passes[0].tolist()) for p in passes)  # each pass is all of forget
    assert not torch.equal(passes[0], passes[1])  # in a new order


def test_frozen_copy_and_retain_subset():
    cell = toy_cell()
    teacher = frozen_copy(cell.original)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert all(p.requires_grad for p in cell.original.parameters())
    subset = retain_subset(cell.data, 0.3, seed=1)
    assert len(subset) == round(0.3 * len(cell.splits.retain)) and set(subset.ids) <= set(cell.splits.retain.ids)
    assert subset.ids == retain_subset(cell.data, 0.3, seed=1).ids != retain_subset(cell.data, 0.3, seed=2).ids
    with pytest.raises(MubenchError, match="retain_fraction"):
        retain_subset(cell.data, 0.0, seed=1)


def summary(t):
    t = t.detach().float().flatten()
    return t.mean().item(), t.std().item(), t.abs().max().item()


@pytest.mark.parametrize("backbone", ["resnet18", "densenet121", "efficientnet_b0"])
def test_reinitialise_matches_a_fresh_torchvision_body(backbone):
    """Every re-initialised body tensor has the distribution of the same tensor in a freshly built model
    (torchvision's own initialisation), BatchNorm exactly weight 1 / bias 0 with reset statistics."""
    torch.manual_seed(0)
    fresh = build_backbone(backbone, 10)
    model = build_backbone(backbone, 10)
    with torch.no_grad():  # move every tensor away from its initial value, as training does
        for t in list(model.parameters()) + [b for b in model.buffers() if b.is_floating_point()]:
            t.mul_(3.0).add_(0.7)
    reinitialise(model, [model.body])
    ref = dict(fresh.body.state_dict())
    for key, value in model.body.state_dict().items():
        if torch.all(ref[key] == ref[key].flatten()[0]):  # constant when built: BN weight / bias, statistics
            assert torch.equal(value, ref[key]), key
        elif value.numel() >= 2000:  # random when built: the same distribution
            got, want = summary(value), summary(ref[key])
            assert got[1] == pytest.approx(want[1], rel=0.1), f"{key}: std {got[1]:.4g}, torchvision {want[1]:.4g}"
            assert abs(got[0]) < 0.1 * want[1], key


def test_reinitialise_linear_as_each_torchvision_family():
    heads = {}
    for name in ("resnet18", "densenet121", "efficientnet_b0"):
        model = build_backbone(name, 10)
        reinitialise(model, [model.head])
        heads[name] = model.head[-1]
    fan_in = heads["resnet18"].in_features
    assert heads["resnet18"].weight.abs().max() <= 1 / math.sqrt(fan_in)  # PyTorch's default, which ResNet keeps
    assert heads["resnet18"].bias.abs().max() > 0
    assert torch.equal(heads["densenet121"].bias, torch.zeros(10))  # DenseNet: default weight, bias 0
    effnet = heads["efficientnet_b0"]  # EfficientNet: U(±1/√out_features), bias 0
    assert effnet.weight.abs().max() <= 1 / math.sqrt(10) and effnet.weight.std() > 0.5 / math.sqrt(3 * 10)
    assert torch.equal(effnet.bias, torch.zeros(10))


def test_reinitialise_convolutions_kaiming_normal_per_family():
    """fan_out for ResNet and EfficientNet, fan_in for DenseNet (the gains torchvision uses)."""
    conv = nn.Conv2d(64, 256, 3, bias=False)  # fan_in 576, fan_out 2304: the two modes differ by 2x in std
    for family, fan in ((torchvision.models.resnet18(), 256 * 9), (torchvision.models.densenet121(), 64 * 9)):
        holder = nn.Module()
        holder.body, holder.extra = family, conv
        reinitialise(holder, [conv])
        assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan), rel=0.05)


# --- Fine-tuning -----------------------------------------------------------------------------------------

def check_finetune(cell):
    """Fine-tuning steps on retain batches only, one pass per epoch, and keeps the retain set fitted."""
    epochs = 2
    batches, _ = recorded_run("finetune", cell, epochs=epochs)
    per_epoch = math.ceil(len(cell.splits.retain) / cell.data.batch_size)
    assert len(batches) == epochs * per_epoch, f"{len(batches)} steps, expected {epochs} x {per_epoch}"
    assert all(batch_kind(b) == "retain" for b in batches), [batch_kind(b) for b in batches]
    model = unlearned("finetune", cell, lr=0.01, epochs=5)
    assert accuracy(model, cell, "retain") >= accuracy(cell.original, cell, "retain") - 0.05


def test_finetune_trains_on_retain_only():
    check_finetune(toy_cell())


# --- NegGrad, NegGrad+ -----------------------------------------------------------------------------------

def check_neggrad(cell):
    """Gradient *ascent* on forget: its steps see forget rows only, and the forget loss rises well above the
    original's, further than the retain loss rises."""
    batches, _ = recorded_run("neggrad", cell)
    assert batches and all(batch_kind(b) == "forget" for b in batches), [batch_kind(b) for b in batches]
    model = unlearned("neggrad", cell, lr=0.05, epochs=10)  # enough ascent to leave the saturated softmax
    forget_before, retain_before = mean_loss(cell.original, cell, "forget"), mean_loss(cell.original, cell, "retain")
    forget_after, retain_after = mean_loss(model, cell, "forget"), mean_loss(model, cell, "retain")
    assert forget_after > 10 * forget_before, (forget_before, forget_after)
    assert forget_after - forget_before > retain_after - retain_before, (forget_after, retain_after)


def test_neggrad_ascends_on_forget():
    check_neggrad(toy_cell())


def check_neggrad_plus_loss(cell):
    """batch_loss = β·CE(retain) − (1−β)·CE(forget), checked on a 2-class linear model by hand."""
    method = METHODS.get("neggrad+")()
    beta = method.config.beta
    model = linear([[1.0, 0.0], [0.0, 1.0]])  # logits = inputs
    retain = (torch.tensor([[2.0, 0.0], [0.0, 0.5]]), torch.tensor([0, 0]))
    forget = (torch.tensor([[0.0, 1.0]]), torch.tensor([0]))
    expected = (beta * (ce([2.0, 0.0], 0) + ce([0.0, 0.5], 0)) / 2 - (1 - beta) * ce([0.0, 1.0], 0))
    got = method.batch_loss(model, (retain, forget), cell.data, cell.context()).item()
    assert got == pytest.approx(expected, rel=1e-5), (got, expected)


def check_neggrad_plus(cell):
    """Each step sees one retain and one forget batch; NegGrad+ leaves the forget set less fitted than fine-tuning
    with the same optimiser, lr and steps, while keeping retain."""
    batches, _ = recorded_run("neggrad+", cell, epochs=1)
    kinds = [batch_kind(b) for b in batches]
    per_epoch = math.ceil(len(cell.splits.retain) / cell.data.batch_size)
    assert kinds == ["retain", "forget"] * per_epoch, kinds
    steps = dict(lr=0.1, epochs=10)  # enough to leave the memorised forget set's saturated softmax
    plus_config = config("neggrad+", **steps)
    same = {f.name: getattr(plus_config, f.name) for f in dataclasses.fields(config("finetune"))}
    plus, tuned = unlearned("neggrad+", cell, **steps), unlearned("finetune", cell, **same)
    assert mean_loss(plus, cell, "forget") > 5 * mean_loss(tuned, cell, "forget"), \
        (mean_loss(plus, cell, "forget"), mean_loss(tuned, cell, "forget"))
    assert accuracy(plus, cell, "retain") >= accuracy(cell.original, cell, "retain") - 0.1


def test_neggrad_plus_loss_by_hand():
    check_neggrad_plus_loss(toy_cell())


def test_neggrad_plus_forgets_more_than_finetuning():
    check_neggrad_plus(toy_cell())


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
    with pytest.raises(MubenchError, match="needs a model with stages"):
        last_stages(nn.Linear(2, 2), 1, "cf-k")


def check_eu_k(cell):
    """The last k stages restart from torchvision-style weights (seen with lr 0, which leaves the weights at
    their start) and every re-initialised parameter then trains; the stages below stay the original's; the
    result fits retain far better than the untrained re-initialisation."""
    k = config("eu-k").k
    names = [name for name, _ in cell.original.stages()]
    frozen, open_ = names[:-k], names[-k:]
    start = unlearned("eu-k", cell, lr=0.0, epochs=1)
    trained = unlearned("eu-k", cell, lr=0.05, epochs=15)
    original = stage_parameters(cell.original, open_)
    for key, value in stage_parameters(start, open_).items():
        assert not torch.equal(value, original[key]), f"{key} was not re-initialised"
        if key.endswith("weight") and value.dim() == 4:  # a convolution: kaiming-normal, fan_out (toy = ResNet's)
            fan_out = value.shape[0] * value[0, 0].numel()
            assert value.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.2), key
    for key, value in stage_parameters(trained, open_).items():
        assert not torch.equal(value, stage_parameters(start, open_)[key]), f"re-initialised {key} did not train"
    for model in (start, trained):
        for key, value in stage_tensors(cell.original, frozen).items():
            assert torch.equal(value, stage_tensors(model, frozen)[key]), f"frozen {key} changed"
    assert accuracy(trained, cell, "retain") > accuracy(start, cell, "retain") + 0.3, \
        (accuracy(trained, cell, "retain"), accuracy(start, cell, "retain"))


def test_eu_k_reinitialises_and_trains_the_last_k_stages():
    check_eu_k(toy_cell())


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


def check_unsir_noise_step(cell=None):
    """One Adam step of the noise follows the official objective −CE(f(n), y) + λ·mean_b Σ_CHW n².

    f(n) = (c·n₀, 0) on a 1×1×2×2 noise of ones with y = 1. Adam's first step moves each element by lr against
    the sign of its gradient. On n₀ that gradient is −c·softmax(f)₀ + 2λ·n₀ with the sum over C·H·W (a mean over
    the 4 elements would make the penalty term 4 times smaller and flip the sign here)."""
    cfg = config("unsir", noise_epochs=1, noise_steps=1)
    unsir, c = METHODS.get("unsir")(cfg), 0.2
    model = nn.Sequential(nn.Flatten(), linear([[c, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))
    grad0 = -c * softmax([c, 0.0])[0] + 2 * cfg.noise_l2 * 1.0
    assert (grad0 > 0) != (-c * softmax([c, 0.0])[0] + 2 * cfg.noise_l2 / 4 > 0)  # the example separates them
    learned = unsir.learn_noise(model, torch.ones(1, 1, 2, 2), torch.tensor([1]), TaskKind.MULTICLASS)
    expected = 1.0 - cfg.noise_lr * math.copysign(1.0, grad0)
    assert learned.flatten()[0].item() == pytest.approx(expected, abs=1e-3), learned.flatten().tolist()
    assert learned.flatten()[1:].tolist() == pytest.approx([1.0 - cfg.noise_lr] * 3, abs=1e-3)  # penalty only


def test_unsir_noise_objective_by_hand():
    check_unsir_noise_step(toy_cell())


def check_unsir(cell):
    """Through `unlearn`: the noise is learned first (eval-mode forwards, no training steps); then impair batches
    each hold retain-subset rows plus noise rows (rows that are no real image): one pass is all of the subset
    (1,000 per class: all of the toy retain) and every noise image 20 times, in batches of about the recipe's size;
    then repair batches hold retain rows only. With the default floors the toy cell's passes (fewer steps) are
    extended to exactly 72 impair and 32 repair steps."""
    cfg = config("unsir", impair_steps=0, repair_steps=0)  # one pass of each phase: the structure
    batches, recorder = recorded_run("unsir", cell, impair_steps=0, repair_steps=0)
    first_train = next(i for i, (training, grad, _) in enumerate(recorder.calls) if training)
    forget_batches = math.ceil(len(cell.splits.forget) / cell.data.batch_size)
    assert first_train == forget_batches * cfg.noise_epochs * cfg.noise_steps, first_train
    subset = len(cell.splits.retain)  # 1,000 per class is more than the toy retain holds
    impair = [b for b in batches if "other" in b]
    repair = batches[len(impair):]
    assert batches[:len(impair)] == impair, "impair batches must all come before repair"
    for b in impair:
        assert "retain" in b and "forget" not in b, b
    assert sum(b.count("other") for b in impair) == cfg.noise_repeats * len(cell.splits.forget)
    assert sum(b.count("retain") for b in impair) == subset
    assert sum(map(len, impair)) <= 1.25 * cell.data.batch_size * len(impair), [len(b) for b in impair]
    assert all(batch_kind(b) == "retain" for b in repair), [batch_kind(b) for b in repair]
    assert sum(map(len, repair)) == subset
    batches, _ = recorded_run("unsir", cell)
    impair = [b for b in batches if "other" in b]
    assert (len(impair), len(batches) - len(impair)) == (72, 32)


def test_unsir_impairs_on_noise_then_repairs_on_retain():
    check_unsir(toy_cell())


# --- Bad Teaching ----------------------------------------------------------------------------------------

def check_bad_teaching_loss(cell):
    """Forget rows follow the incompetent teacher, retain rows the competent one; KL(teacher ‖ student) at T,
    'mean' reduction (over batch × classes), by hand on 2-class linear models."""
    bad = METHODS.get("bad-teaching")()
    t = bad.config.temperature
    student, competent = linear([[1.0, 0.0], [0.0, 1.0]]), linear([[0.0, 0.0], [0.0, 2.0]])
    incompetent = linear([[0.0, 0.0], [0.0, 0.0]])  # uniform outputs
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    is_forget = torch.tensor([1.0, 0.0])
    forget_row = kl_rows(softmax([0.0, 0.0], t), softmax([1.0, 0.0], t))
    retain_row = kl_rows(softmax([0.0, 2.0], t), softmax([0.0, 1.0], t))
    expected = (forget_row + retain_row) / (2 * 2)
    got = bad.loss(student, competent, incompetent, (x, is_forget), TaskKind.MULTICLASS).item()
    assert got == pytest.approx(expected, rel=1e-5), (got, expected)


def check_bad_teaching(cell):
    """Through `unlearn`: each epoch's batches hold all of forget and a retain_fraction share of retain; with a
    larger step, forget outputs leave the original's (towards the incompetent teacher's) while retain's stay."""
    cfg = config("bad-teaching", min_steps=0)  # one pass: the unlearning set's make-up
    batches, _ = recorded_run("bad-teaching", cell, min_steps=0)
    rows = [role for b in batches for role in b]
    assert rows.count("forget") == cfg.epochs * len(cell.splits.forget), rows.count("forget")
    assert rows.count("retain") == cfg.epochs * round(cfg.retain_fraction * len(cell.splits.retain))
    result = unlearned("bad-teaching", cell, lr=1e-3, epochs=5)
    forget_kl = kl(cell.original, result, inputs(cell, "forget"))
    assert forget_kl > 3 * kl(cell.original, result, inputs(cell, "retain")), forget_kl
    assert accuracy(result, cell, "forget") < accuracy(cell.original, cell, "forget")


def test_bad_teaching_loss_by_hand():
    check_bad_teaching_loss(toy_cell())


def test_bad_teaching_distils_both_teachers():
    check_bad_teaching(toy_cell())


# --- SCRUB -----------------------------------------------------------------------------------------------

def check_scrub_losses(cell):
    """Max step: −T²·KL(teacher ‖ student) only; min step: γ·CE + α·T²·KL; by hand on 2-class linear models."""
    scrub = METHODS.get("scrub")()
    cfg = scrub.config
    t = cfg.temperature
    student, teacher = linear([[1.0, 0.0], [0.0, 1.0]]), linear([[0.0, 2.0], [1.0, 0.0]])
    x, y = torch.tensor([[1.0, 0.5]]), torch.tensor([0])
    divergence = t * t * kl_rows(softmax([1.0, 1.0], t), softmax([1.0, 0.5], t))  # teacher (1, 1), student (1, .5)
    got_max = scrub.step_loss("max", student, teacher, (x, y), TaskKind.MULTICLASS).item()
    got_min = scrub.step_loss("min", student, teacher, (x, y), TaskKind.MULTICLASS).item()
    assert got_max == pytest.approx(-divergence, rel=1e-4), (got_max, -divergence)  # float32 arithmetic
    assert got_min == pytest.approx(cfg.gamma * ce([1.0, 0.5], 0) + cfg.alpha * divergence, rel=1e-4)


def check_scrub(cell):
    """Through `unlearn`: epoch e < max_steps starts with a max pass over forget (batches twice the retain ones),
    then a min pass over retain; the max passes push the forget outputs away from the teacher's, far more
    than the retain outputs move."""
    cfg = config("scrub")
    batches, _ = recorded_run("scrub", cell)
    forget_pass = ["forget"] * math.ceil(len(cell.splits.forget) / (2 * cell.data.batch_size))
    retain_pass = ["retain"] * math.ceil(len(cell.splits.retain) / cell.data.batch_size)
    expected = [kind for epoch in range(cfg.epochs)
                for kind in (forget_pass if epoch < cfg.max_steps else []) + retain_pass]
    assert [batch_kind(b) for b in batches] == expected
    result = unlearned("scrub", cell, lr=0.01, epochs=5, max_steps=5)  # enough max steps to see their effect
    t = cfg.temperature
    forget_kl = kl(cell.original, result, inputs(cell, "forget"), t)
    assert forget_kl > 2 * kl(cell.original, result, inputs(cell, "retain"), t), forget_kl
    assert accuracy(result, cell, "retain") >= accuracy(cell.original, cell, "retain") - 0.1


def test_scrub_losses_by_hand():
    check_scrub_losses(toy_cell())


def test_scrub_alternates_max_and_min_passes():
    check_scrub(toy_cell())

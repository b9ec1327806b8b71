"""random-label, SalUn, SSD and ℓ1-sparse: each method's defining effect, checked independently of its code.

Each `check_*` raises AssertionError when a method does not do what its paper defines; the tests run them on the
real methods and, at the bottom, on deliberately wrong variants (patched with monkeypatch), which must fail.
Expected values are computed by hand from each method's definition, never read from the code under test.
"""
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mubench.unlearn.method_tools as method_tools
import mubench.methods.l1_sparse as l1_module
import mubench.methods.salun as salun_module
import mubench.methods.ssd as ssd_module
from mubench.unlearn.api import METHODS, UnlearnData
from mubench.data.splits import Preprocess, Split
from mubench.core.errors import MubenchError
from mubench.core.losses import TaskKind, task_loss
from mubench.kits.method_kit import single_thread, toy_cell

from test_baselines import (accuracy, batch_kind, ce, config, inputs, linear, recorded_run, row_roles, softmax,
                            unlearned)


# The toy cell holds 96 retain and 32 forget images: at the official batch 256 of random-label, SalUn and ℓ1-sparse
# each is a single batch, which hides the order of batches within a pass; the checks of each algorithm run at the
# toy recipe's batch (32) instead.
TOY_BATCH = dict(batch_size=0)


@pytest.fixture(autouse=True)
def _one_thread():
    with single_thread():
        yield


def true_labels(cell, x):
    """The true label of each row of `x` that is a forget or retain input (rows looked up by their bytes)."""
    table = {}
    for role in ("retain", "forget"):
        for row, label in zip(inputs(cell, role), cell.splits.role(role).labels):
            table[row.numpy().tobytes()] = label
    return torch.stack([table[row.numpy().tobytes()] for row in x])


def epoch_batches(name, cell, epochs=1):
    """(x, y) of `epochs` passes over the method's own batches (as the loop consumes them)."""
    method = METHODS.get(name)(config(name, **TOY_BATCH))
    batches = method.batches(cell.data, cell.context())
    return [[(x.clone(), y.clone()) for x, y in batches] for _ in range(epochs)]


def assert_forgets_unlike_finetuning(name, cell):
    """`name` with its defaults leaves forget accuracy far below fine-tuning's with the same lr and epochs, and
    keeps retain fitted."""
    cfg = config(name)
    result, tuned = unlearned(name, cell, **TOY_BATCH), unlearned("finetune", cell, lr=cfg.lr, epochs=cfg.epochs)
    assert accuracy(result, cell, "forget") < accuracy(tuned, cell, "forget") - 0.3, \
        (accuracy(result, cell, "forget"), accuracy(tuned, cell, "forget"))
    assert accuracy(result, cell, "retain") >= accuracy(cell.original, cell, "retain") - 0.1


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# --- Shared: wrong labels --------------------------------------------------------------------------------

def check_wrong_labels(cell=None):
    """Multiclass: never the true label, every other class drawn, about uniformly; multilabel: each attribute
    flipped."""
    labels = torch.tensor([0, 1, 2] * 2000)
    drawn = method_tools.wrong_labels(labels, 3, False, torch.Generator().manual_seed(0))
    assert not torch.any(drawn == labels), "a 'wrong' label equals the true one"
    for true in range(3):
        others = drawn[labels == true]
        for other in set(range(3)) - {true}:
            share = (others == other).float().mean().item()
            assert share == pytest.approx(0.5, abs=0.05), (true, other, share)  # two wrong classes, 1/2 each
    attributes = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    flipped = method_tools.wrong_labels(attributes, 3, True, torch.Generator().manual_seed(0))
    assert flipped.tolist() == [[0.0, 1.0, 0.0], [1.0, 1.0, 0.0]]


def test_wrong_labels_by_hand():
    check_wrong_labels()


def test_wrong_labels_needs_two_classes():
    with pytest.raises(MubenchError, match="at least 2 classes"):
        method_tools.wrong_labels(torch.tensor([0]), 1, False)


# --- random-label ----------------------------------------------------------------------------------------

def check_random_label(cell):
    """Each epoch: every forget batch, each row labelled with a label that is never its own (drawn afresh every
    epoch), then every retain batch with its true labels; through `unlearn` the training steps come in that order,
    and the forget set is unlearned (its accuracy falls far below fine-tuning's with the same
    lr and epochs) while retain stays fitted."""
    forget_steps = math.ceil(len(cell.splits.forget) / cell.data.batch_size)
    retain_steps = math.ceil(len(cell.splits.retain) / cell.data.batch_size)
    passes = epoch_batches("random-label", cell, epochs=2)
    relabelled = []  # per epoch: forget row -> the label it was given
    for batches in passes:
        assert len(batches) == forget_steps + retain_steps, len(batches)
        given = {}
        for i, (x, y) in enumerate(batches):
            truth = true_labels(cell, x)
            if i < forget_steps:
                assert set(row_roles(cell, x)) == {"forget"}, row_roles(cell, x)
                assert not torch.any(y == truth), "a forget row kept its true label"
                given.update({row.numpy().tobytes(): label.item() for row, label in zip(x, y)})
            else:
                assert set(row_roles(cell, x)) == {"retain"} and torch.equal(y, truth)
        assert len(given) == len(cell.splits.forget)
        relabelled.append(given)
    assert any(relabelled[0][row] != relabelled[1][row] for row in relabelled[0]), "labels are not drawn afresh"
    batches, _ = recorded_run("random-label", cell, epochs=2, **TOY_BATCH)
    kinds = [batch_kind(b) for b in batches]
    assert kinds == (["forget"] * forget_steps + ["retain"] * retain_steps) * 2, kinds
    assert_forgets_unlike_finetuning("random-label", cell)


def test_random_label_relabels_forget_then_fits_retain():
    check_random_label(toy_cell())


def check_random_label_multilabel(cell=None):
    """Multi-label: the forget rows carry every attribute flipped."""
    cell = toy_cell(TaskKind.MULTILABEL)
    forget_steps = math.ceil(len(cell.splits.forget) / cell.data.batch_size)
    for x, y in epoch_batches("random-label", cell)[0][:forget_steps]:
        assert torch.equal(y, 1 - true_labels(cell, x)), "forget attributes are not all flipped"


def test_random_label_flips_forgotten_attributes():
    check_random_label_multilabel()


# --- SalUn -----------------------------------------------------------------------------------------------

def test_top_fraction_mask_by_hand():
    """One ranking over all tensors by |score|: of 5 entries, 40 % keeps the 2 largest magnitudes (−0.5, −0.4)."""
    scores = {"a": torch.tensor([0.1, -0.5, 0.3]), "b": torch.tensor([[0.05, -0.4]])}
    masks = salun_module.top_fraction_mask(scores, 0.4)
    assert masks["a"].tolist() == [False, True, False] and masks["b"].tolist() == [[False, True]]
    everything = salun_module.top_fraction_mask(scores, 1.0)
    assert all(m.all() for m in everything.values())
    with pytest.raises(MubenchError, match="mask_fraction"):
        salun_module.top_fraction_mask(scores, 0.0)


def expected_saliency(cell, fraction):
    """name -> |∇θ mean CE over all of forget| at the original weights (eval mode), and the k-th largest value
    (k = int(fraction · N)): the paper's hard threshold γ, computed here in one batch."""
    model = cell.model().eval()
    F.cross_entropy(model(inputs(cell, "forget")), cell.splits.forget.labels).backward()
    magnitudes = {name: p.grad.abs() for name, p in model.named_parameters()}
    flat = torch.cat([m.flatten() for m in magnitudes.values()])
    return magnitudes, flat.sort(descending=True).values[int(fraction * flat.numel()) - 1].item()


def check_salun(cell):
    """Only the salient weights move: every parameter entry whose forget-gradient magnitude is clearly below the
    top-fraction threshold keeps its original value exactly; nearly every entry clearly above it changes."""
    fraction = config("salun").mask_fraction
    magnitudes, threshold = expected_saliency(cell, fraction)
    result = unlearned("salun", cell, **TOY_BATCH)
    original = dict(cell.original.named_parameters())
    below = above = changed_above = 0
    for name, p in result.named_parameters():
        moved = p.detach() != original[name].detach()
        low, high = magnitudes[name] < threshold * (1 - 1e-3), magnitudes[name] > threshold * (1 + 1e-3)
        assert not torch.any(moved & low), f"{name}: {int((moved & low).sum())} non-salient entries changed"
        below += int(low.sum())
        above += int(high.sum())
        changed_above += int((moved & high).sum())
    total = sum(m.numel() for m in magnitudes.values())
    assert below >= (1 - fraction) * total * 0.98, (below, total)  # the example has a real mask
    assert changed_above >= 0.95 * above, (changed_above, above)


def test_salun_updates_only_salient_weights():
    check_salun(toy_cell())


def check_salun_forgets(cell):
    """SalUn unlearns forget (accuracy far below fine-tuning's with the same lr and epochs) and keeps retain."""
    assert_forgets_unlike_finetuning("salun", cell)


def test_salun_forgets_and_keeps_retain():
    check_salun_forgets(toy_cell())


def test_salun_without_mask_is_random_label():
    """The `no-mask` ablation (every weight salient) is random-label, bit for bit."""
    cell = toy_cell()
    cls = METHODS.get("salun")
    no_mask = unlearned("salun", cell, **cls.ablations["no-mask"])
    plain = unlearned("random-label", cell)
    assert all(torch.equal(a, b) for a, b in zip(state(no_mask).values(), state(plain).values()))


# --- SSD -------------------------------------------------------------------------------------------------

PIXELS = 255.0
SSD_FORGET = [((255, 102), 1)]  # x = (1, 0.4)
SSD_RETAIN = [((0, 255), 1), ((0, 255), 0), ((255, 255), 0), ((51, 0), 1)]
SSD_W, SSD_B = [[0.5, -0.3], [-0.2, 0.4]], [0.1, -0.1]


def tiny_data(rows_forget, rows_retain):
    def split(rows, role):
        images = torch.tensor([list(pixels) for pixels, _ in rows], dtype=torch.uint8).view(-1, 1, 1, 2)
        return Split(images, torch.tensor([y for _, y in rows]), tuple(f"{role}-{i}" for i in range(len(rows))))
    return UnlearnData(split(rows_retain, "retain"), split(rows_forget, "forget"), split(rows_retain, "val"),
                       TaskKind.MULTICLASS, 2, Preprocess((0.0,), (1.0,)), 4, torch.device("cpu"))


def hand_gradients(rows):
    """(dW, db) of the mean CE of a 2→2 linear layer over `rows`, by hand: (softmax(Wx + b) − e_y) xᵀ."""
    dW, db = [[0.0, 0.0], [0.0, 0.0]], [0.0, 0.0]
    for pixels, y in rows:
        x = [v / PIXELS for v in pixels]
        p = softmax([SSD_W[k][0] * x[0] + SSD_W[k][1] * x[1] + SSD_B[k] for k in range(2)])
        for k in range(2):
            d = p[k] - (1.0 if k == y else 0.0)
            db[k] += d / len(rows)
            for j in range(2):
                dW[k][j] += d * x[j] / len(rows)
    return dW, db


def check_ssd_by_hand(cell=None):
    """On a 2→2 linear model (one batch per set): importance = squared mean-loss gradient; an entry is dampened
    iff forget importance > α × importance over retain ∪ forget, by exactly min(λ·overall/forget, 1); the share
    of dampened entries is logged.

    The example has entries of both kinds and one whose forget importance exceeds the overall one but not α
    times it (so the α selection matters). α as given (`alpha_rule="fixed"`): its carrying over to the forget share
    is tests/test_ssd.py's."""
    cfg = config("ssd", alpha_rule="fixed")
    model = nn.Sequential(nn.Flatten(), linear(SSD_W, SSD_B))
    logged = {}
    ctx = toy_cell().context(log=lambda name, value, step: logged.__setitem__(name, value))
    result = METHODS.get("ssd")(cfg).unlearn(model, tiny_data(SSD_FORGET, SSD_RETAIN), ctx)
    forget_w, forget_b = hand_gradients(SSD_FORGET)
    full_w, full_b = hand_gradients(SSD_RETAIN + SSD_FORGET)
    kinds = []

    def expected(value, forget_grad, full_grad):
        f, d = forget_grad ** 2, full_grad ** 2
        kinds.append("dampened" if f > cfg.alpha * d else "between" if f > d else "kept")
        return value * min(cfg.lam * d / f, 1.0) if f > cfg.alpha * d else value

    want_w = [[expected(SSD_W[k][j], forget_w[k][j], full_w[k][j]) for j in range(2)] for k in range(2)]
    want_b = [expected(SSD_B[k], forget_b[k], full_b[k]) for k in range(2)]
    assert {"dampened", "between"} <= set(kinds), kinds
    layer = result[1]
    assert layer.weight.tolist() == [pytest.approx(row, rel=1e-4) for row in want_w], (layer.weight, want_w)
    assert layer.bias.tolist() == pytest.approx(want_b, rel=1e-4), (layer.bias, want_b)
    assert logged.get("ssd_dampened_share") == pytest.approx(kinds.count("dampened") / len(kinds)), logged


def test_ssd_dampens_by_hand():
    check_ssd_by_hand()


def check_ssd(cell):
    """On the toy cell: no training (BatchNorm statistics and every buffer unchanged); each parameter entry is
    either exactly its original value or the same value scaled by a factor in [0, 1); some are dampened."""
    result = unlearned("ssd", cell)
    before, after = state(cell.original), state(result)
    parameters = {name for name, _ in result.named_parameters()}
    dampened = 0
    for key, value in before.items():
        if key not in parameters:
            assert torch.equal(value, after[key]), f"buffer {key} changed: SSD takes no training step"
            continue
        changed = after[key] != value
        ratio = after[key][changed] / value[changed]
        assert torch.all((ratio >= 0) & (ratio < 1)), f"{key}: an entry grew or flipped sign"
        dampened += int(changed.sum())
    assert dampened > 0


def test_ssd_only_dampens():
    check_ssd(toy_cell())


# --- ℓ1-sparse -------------------------------------------------------------------------------------------

def test_l1_coefficient_by_hand():
    assert [l1_module.l1_coefficient(1.0, e, 4) for e in range(4)] == pytest.approx([1.0, 0.75, 0.5, 0.25])


def check_l1_schedule(cell):
    """Through the method's batches, as the loop consumes them: every retain batch of pass e (of E) carries
    γ·(1 − e/E), constant within the pass."""
    cfg = config("l1-sparse", epochs=4, **TOY_BATCH)
    method = METHODS.get("l1-sparse")(cfg)
    batches = method.batches(cell.data, cell.context())
    for epoch in range(cfg.epochs):
        coefficients = [batch[2] for batch in batches]
        assert coefficients == [pytest.approx(cfg.gamma * (1 - epoch / cfg.epochs))] * len(batches), \
            (epoch, coefficients)


def test_l1_coefficient_decays_linearly_over_epochs():
    check_l1_schedule(toy_cell())


def check_l1_loss(cell):
    """batch_loss = CE + c·Σ|θ| over every parameter (weights and biases), by hand on a 2-class linear model."""
    method = METHODS.get("l1-sparse")()
    model = linear([[1.0, -2.0], [0.0, 0.5]], [0.25, -1.0])
    x, y, c = torch.tensor([[2.0, 0.0]]), torch.tensor([1]), 0.1
    expected = ce([2.0 + 0.25, 0.0 - 1.0], 1) + c * (1 + 2 + 0 + 0.5 + 0.25 + 1)
    got = method.batch_loss(model, (x, y, c), cell.data, cell.context()).item()
    assert got == pytest.approx(expected, rel=1e-5), (got, expected)


def test_l1_loss_by_hand():
    check_l1_loss(toy_cell())


def check_l1_sparse(cell):
    """Trains on retain batches only; with a large γ the weights end far sparser (smaller ℓ1 norm) than plain
    fine-tuning with the same budget (the no-l1 ablation), retain still fitted."""
    batches, _ = recorded_run("l1-sparse", cell, epochs=1)
    assert batches and all(batch_kind(b) == "retain" for b in batches)
    steps = dict(lr=0.01, epochs=5, **TOY_BATCH)
    sparse = unlearned("l1-sparse", cell, gamma=0.03, **steps)
    dense = unlearned("l1-sparse", cell, **steps, **METHODS.get("l1-sparse").ablations["no-l1"])
    norm = lambda m: sum(p.abs().sum().item() for p in m.parameters())  # noqa: E731
    assert norm(sparse) < 0.9 * norm(dense), (norm(sparse), norm(dense))
    assert accuracy(sparse, cell, "retain") >= accuracy(cell.original, cell, "retain") - 0.1


def test_l1_sparse_shrinks_weights_and_keeps_retain():
    check_l1_sparse(toy_cell())


# --- Wrong variants: each must fail its check ------------------------------------------------------------

def labels_over_all_classes(mp):  # SalUn's official torch.randint: the true label can come back
    mp.setattr(method_tools, "wrong_labels",
               lambda labels, n, multilabel, generator=None:
               1 - labels if multilabel else torch.randint(0, n, labels.shape, generator=generator))


def labels_shifted_by_one(mp):  # wrong, but not random: always the next class
    mp.setattr(method_tools, "wrong_labels",
               lambda labels, n, multilabel, generator=None: 1 - labels if multilabel else (labels + 1) % n)


def multilabel_random_attributes(mp):
    original = method_tools.wrong_labels

    def wrong(labels, n, multilabel, generator=None):
        if multilabel:
            return torch.randint(0, 2, labels.shape, generator=generator).float()
        return original(labels, n, multilabel, generator)
    mp.setattr(method_tools, "wrong_labels", wrong)


def forget_keeps_true_labels(mp):
    mp.setattr(method_tools.RelabelledForgetThenRetain, "__iter__",
               lambda self: (b for loader in (self.forget, self.retain) for b in loader))


def retain_before_forget(mp):
    def batches(self):
        yield from self.retain
        for x, y in self.forget:
            yield x, method_tools.wrong_labels(y, self.num_outputs, self.multilabel, self.generator)
    mp.setattr(method_tools.RelabelledForgetThenRetain, "__iter__", batches)


def forget_only(mp):
    def batches(self):
        for x, y in self.forget:
            yield x, method_tools.wrong_labels(y, self.num_outputs, self.multilabel, self.generator)
    mp.setattr(method_tools.RelabelledForgetThenRetain, "__iter__", batches)


def salun_masks_gradients_only(mp):  # older official RL.py: weight decay and momentum still move the rest
    def keep_outside_mask(optimizer, model, masks):
        for name, p in model.named_parameters():
            p.register_hook(lambda grad, mask=masks[name]: grad * mask)
    mp.setattr(salun_module, "keep_outside_mask", keep_outside_mask)


def salun_smallest_gradients(mp):
    original = salun_module.top_fraction_mask

    def mask(scores, fraction):
        return original({k: 1.0 / (v.abs() + 1e-12) for k, v in scores.items()}, fraction)
    mp.setattr(salun_module, "top_fraction_mask", mask)


def salun_mask_per_tensor(mp):
    def mask(scores, fraction):
        out = {}
        for name, s in scores.items():
            keep = torch.zeros(s.numel(), dtype=torch.bool)
            keep[torch.topk(s.abs().flatten(), int(fraction * s.numel())).indices] = True
            out[name] = keep.view_as(s)
        return out
    mp.setattr(salun_module, "top_fraction_mask", mask)


def salun_mask_from_retain(mp):
    original = salun_module.forget_gradient

    def gradient(model, data, batch_size=None):
        return original(model, dataclasses.replace(data, forget=data.retain), batch_size)
    mp.setattr(salun_module, "forget_gradient", gradient)


def salun_without_mask(mp):
    mp.setattr(salun_module, "keep_outside_mask", lambda optimizer, model, masks: None)


def ssd_ignores_alpha(mp):
    original = ssd_module.dampen
    mp.setattr(ssd_module, "dampen", lambda model, full, forget, alpha, lam: original(model, full, forget, 1.0, lam))


def ssd_constant_dampening(mp):
    @torch.no_grad()
    def dampen(model, full, forget, alpha, lam):
        for name, p in model.named_parameters():
            p.copy_(torch.where(forget[name] > alpha * full[name], p * 0.5, p))
        return 0
    mp.setattr(ssd_module, "dampen", dampen)


def ssd_overall_from_retain_only(mp):  # the paper's D is the whole training set, forget included
    def unlearn(self, model, data, ctx):
        size = self.config.batch_size
        full = ssd_module.importances(model, data.loader("retain", shuffle=False, batch_size=size), data.kind)
        forget = ssd_module.importances(model, data.loader("forget", shuffle=False, batch_size=size), data.kind)
        ssd_module.dampen(model, full, forget, self.config.alpha, self.config.lam)
        return model.eval()
    mp.setattr(ssd_module.SSD, "unlearn", unlearn)


def ssd_per_sample_fisher(mp):
    def importances(model, batches, kind):
        model.eval()
        total = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
        count = 0
        for x, y in batches:
            for i in range(len(x)):
                model.zero_grad()
                task_loss(model(x[i:i + 1]), y[i:i + 1], kind).backward()
                for name, p in model.named_parameters():
                    total[name] += p.grad.pow(2)
                count += 1
        return {name: value / count for name, value in total.items()}
    mp.setattr(ssd_module, "importances", importances)


def ssd_importances_in_train_mode(mp):  # BatchNorm normalises with batch statistics and updates its buffers
    def importances(model, batches, kind):
        model.train()
        total = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
        count = 0
        for x, y in batches:
            model.zero_grad()
            task_loss(model(x), y, kind).backward()
            for name, p in model.named_parameters():
                total[name] += p.grad.pow(2)
            count += 1
        return {name: value / count for name, value in total.items()}
    mp.setattr(ssd_module, "importances", importances)


def l1_coefficient_per_step(mp):  # decays within the pass too
    def iterate(self):
        steps = self.epochs * len(self.retain)
        for i, (x, y) in enumerate(self.retain):
            yield x, y, self.gamma * (1 - (self.passes * len(self.retain) + i) / steps)
        self.passes += 1
    mp.setattr(l1_module.RetainWithCoefficient, "__iter__", iterate)


def l1_coefficient_constant(mp):
    mp.setattr(l1_module, "l1_coefficient", lambda gamma, epoch, epochs: gamma)


def l1_coefficient_reaches_zero(mp):
    mp.setattr(l1_module, "l1_coefficient", lambda gamma, epoch, epochs: gamma * (1 - (epoch + 1) / epochs))


def l1_weights_only(mp):  # penalty on weight matrices, not biases
    mp.setattr(l1_module, "l1_norm", lambda model: sum(p.abs().sum() for n, p in model.named_parameters()
                                                        if n.endswith("weight")))


def l1_squared_norm(mp):
    mp.setattr(l1_module, "l1_norm", lambda model: sum(p.pow(2).sum() for p in model.parameters()))


def l1_never_applied(mp):
    mp.setattr(l1_module, "l1_norm", lambda model: torch.zeros(()))


VARIANTS = [
    ("labels over all classes", labels_over_all_classes, check_wrong_labels),
    ("labels over all classes (random-label)", labels_over_all_classes, check_random_label),
    ("labels shifted by one", labels_shifted_by_one, check_wrong_labels),
    ("labels shifted by one (random-label)", labels_shifted_by_one, check_random_label),
    ("multilabel random attributes", multilabel_random_attributes, check_random_label_multilabel),
    ("forget keeps true labels", forget_keeps_true_labels, check_random_label),
    ("retain before forget", retain_before_forget, check_random_label),
    ("forget only", forget_only, check_random_label),
    ("salun masks gradients only", salun_masks_gradients_only, check_salun),
    ("salun smallest gradients", salun_smallest_gradients, check_salun),
    ("salun mask per tensor", salun_mask_per_tensor, check_salun),
    ("salun mask from retain", salun_mask_from_retain, check_salun),
    ("salun without mask", salun_without_mask, check_salun),
    ("salun forget keeps true labels", forget_keeps_true_labels, check_salun_forgets),
    ("ssd ignores alpha", ssd_ignores_alpha, check_ssd_by_hand),
    ("ssd constant dampening", ssd_constant_dampening, check_ssd_by_hand),
    ("ssd overall from retain only", ssd_overall_from_retain_only, check_ssd_by_hand),
    ("ssd per-sample fisher", ssd_per_sample_fisher, check_ssd_by_hand),
    ("ssd importances in train mode", ssd_importances_in_train_mode, check_ssd),
    ("l1 coefficient per step", l1_coefficient_per_step, check_l1_schedule),
    ("l1 coefficient constant", l1_coefficient_constant, check_l1_schedule),
    ("l1 coefficient reaches zero", l1_coefficient_reaches_zero, check_l1_schedule),
    ("l1 weights only", l1_weights_only, check_l1_loss),
    ("l1 squared norm", l1_squared_norm, check_l1_loss),
    ("l1 never applied", l1_never_applied, check_l1_sparse),
]


@pytest.mark.parametrize("patch, check", [v[1:] for v in VARIANTS], ids=[v[0] for v in VARIANTS])
def test_check_fails_on_wrong_variant(patch, check, monkeypatch):
    patch(monkeypatch)
    with pytest.raises(AssertionError):
        check(toy_cell())

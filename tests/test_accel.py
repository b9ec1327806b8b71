"""The GPU fast path (mubench.core.accel), checked on the CPU: off there by default, so CPU numbers are plain float32
PyTorch's; forced on, it runs the same code as on CUDA (bf16 autocast, channels-last, the device-side batch path)
and moves scores by no more than bf16 rounding does.

Tolerances of the forced path against float32, on the toy cell (32 test images): accuracies within 2 images
(1/16), mean losses within 2 % relative.
"""
import copy
import pickle

import pytest
import torch
import torch.nn.functional as F

from mubench.core import accel

from mubench.scores import metrics
from mubench.data.splits import BatchLoader, Preprocess, Split
from mubench.core.losses import TaskKind
from mubench.kits.method_kit import run_on_toy, single_thread, toy_cell, toy_model, toy_splits
from mubench.train.training import fit, make_optimizer, train_reference
from mubench.data.tasks import Recipe

CPU = torch.device("cpu")
ACCURACY_TOLERANCE = 1 / 16
LOSS_TOLERANCE = 0.02
AUGMENTS = ("none", "flip", "crop-flip", "flip-affine-jitter")


def random_split(n: int = 40, size: int = 16, seed: int = 1) -> Split:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    return Split(images, torch.arange(n) % 4, tuple(str(i) for i in range(n)))


def batches(split: Split, preprocess: Preprocess, seed: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader = BatchLoader(split, preprocess, 16, shuffle=True, augment=True, seed=seed)
    return [batch for _ in range(2) for batch in loader]


def test_the_fast_path_follows_the_device_unless_a_block_says_otherwise():
    assert not accel.fast_on("cpu") and accel.fast_on("cuda")
    with accel.autocast(CPU):
        assert not torch.is_autocast_enabled("cpu")
    with accel.fast_path(True):
        assert accel.fast_on("cpu")
        with accel.autocast(CPU):
            assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        with accel.fast_path(False):
            assert not accel.fast_on("cuda")
    assert not accel.fast_on("cpu") and accel.fast_on("cuda")


def test_the_loader_draws_what_plain_preprocessing_draws():
    """Shuffle order, then each batch's augmentation, from one generator seeded by the loader."""
    split = random_split()
    for augment in AUGMENTS:
        preprocess = Preprocess((0.4, 0.5, 0.6), (0.2, 0.25, 0.3), augment)
        g = torch.Generator().manual_seed(3)
        expected = []
        for _ in range(2):
            order = torch.randperm(len(split), generator=g)
            for b in range(0, len(split), 16):
                index = order[b:b + 16]
                expected.append((preprocess.to_input(split.images[index], True, g), split.labels[index]))
        got = batches(split, preprocess)
        assert len(got) == len(expected) == 6
        assert all(torch.equal(x, ex) and torch.equal(y, ey) for (x, y), (ex, ey) in zip(got, expected)), augment


def test_on_the_fast_path_batches_hold_the_same_pixels_in_channels_last_layout():
    split = random_split()
    for augment in AUGMENTS:
        preprocess = Preprocess((0.4, 0.5, 0.6), (0.2, 0.25, 0.3), augment)
        plain = batches(split, preprocess)
        with accel.fast_path(True):
            fast = batches(split, preprocess)
        assert all(torch.equal(x, fx) and torch.equal(y, fy) for (x, y), (fx, fy) in zip(plain, fast)), augment
        assert all(fx.is_contiguous(memory_format=torch.channels_last) for fx, _ in fast)
        assert all(x.is_contiguous() for x, _ in plain)


def plain_epochs(model, split, preprocess, epochs, lr=0.05):
    """A bare float32 loop over the same batches."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    loader = BatchLoader(split, preprocess, 32, shuffle=True, augment=True, seed=0)
    for _ in range(epochs):
        for x, y in loader:
            model.train()
            loss = F.cross_entropy(model.head(model.body(x)), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


def test_by_default_cpu_training_and_evaluation_are_plain_float32():
    splits = toy_splits()
    preprocess = Preprocess((0.5,) * 3, (0.5,) * 3, "flip")
    with single_thread():
        harness = toy_model(4)
        loader = BatchLoader(splits.retain, preprocess, 32, shuffle=True, augment=True, seed=0)
        fit(harness, lambda epoch: loader, lambda m, b: F.cross_entropy(m(b[0]), b[1]),
            make_optimizer(harness.parameters(), "sgd", 0.05), 3)
        bare = plain_epochs(toy_model(4), splits.retain, preprocess, 3)
        harness_state, bare_state = harness.state_dict(), bare.state_dict()
        assert all(torch.equal(harness_state[k], bare_state[k]) for k in bare_state)
        assert all(p.is_contiguous() for p in harness.parameters())
        losses, right = metrics.evaluate(harness, splits.test, splits.kind, splits.preprocess, CPU)
        with torch.no_grad():
            logits = bare.head(bare.body(splits.preprocess.to_input(splits.test.images)))
        assert torch.equal(torch.from_numpy(losses), F.cross_entropy(logits, splits.test.labels, reduction="none"))
        assert torch.equal(torch.from_numpy(right), (logits.argmax(1) == splits.test.labels).float())


def assert_close_scores(plain: dict, fast: dict, roles=("retain", "forget", "test")):
    for role in roles:
        assert abs(plain[f"{role}_acc"] - fast[f"{role}_acc"]) <= ACCURACY_TOLERANCE, (role, plain, fast)
        assert fast[f"{role}_loss"] == pytest.approx(plain[f"{role}_loss"], rel=LOSS_TOLERANCE), (role, plain, fast)


def test_references_trained_on_the_fast_path_score_as_float32_ones_do():
    splits = toy_splits()
    recipe = Recipe(epochs=15, batch_size=32, lr=0.05)
    scores, models = {}, {}
    with single_thread():
        for fast in (False, True):
            with accel.fast_path(fast):
                models[fast] = toy_model(4)
                train_reference(models[fast], splits.retain, TaskKind.MULTICLASS, splits.preprocess, recipe, CPU, 0)
                scores[fast] = metrics.score_model(models[fast], splits, CPU)
    assert_close_scores(scores[False], scores[True])
    assert scores[True]["retain_acc"] > 0.8  # both learned: the comparison is not between two untrained models
    plain, fast = models[False].state_dict(), models[True].state_dict()
    assert any(not torch.equal(plain[k], fast[k]) for k in plain)  # bf16 did run
    conv = models[True].body.conv1[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()


def test_evaluation_on_the_fast_path_is_float32_within_bf16_rounding():
    cell = toy_cell()
    plain = metrics.evaluate(cell.original, cell.splits.test, cell.splits.kind, cell.splits.preprocess, CPU)[0]
    with accel.fast_path(True):
        fast = metrics.evaluate(cell.original, cell.splits.test, cell.splits.kind, cell.splits.preprocess, CPU)[0]
    assert fast.dtype == plain.dtype and not (fast == plain).all()
    assert fast.mean() == pytest.approx(plain.mean(), rel=LOSS_TOLERANCE)


@pytest.mark.parametrize("method", ["finetune", "scrub", "ssd"])
def test_methods_on_the_fast_path_score_as_in_float32(method):
    """finetune: the shared loop; scrub: its own calls of fit with a teacher; ssd: gradients outside fit."""
    cell = toy_cell()
    scores = {}
    for fast in (False, True):
        with accel.fast_path(fast):
            scores[fast] = metrics.score_model(run_on_toy(method, cell), cell.splits, CPU)
    assert_close_scores(scores[False], scores[True])


def test_a_split_is_copied_to_a_device_once_and_pickled_without_its_copies():
    split = random_split(8)
    assert split.on("cpu") is split
    moved = split.on("meta")
    assert moved.images.device.type == "meta" and moved.labels.device.type == "meta" and moved.ids == split.ids
    assert split.on(torch.device("meta")) is moved
    restored = pickle.loads(pickle.dumps(split))
    assert torch.equal(restored.images, split.images) and restored.ids == split.ids
    assert restored.on("meta") is not moved
    assert copy.deepcopy(split).on("meta") is not moved


def test_cuda_autocast_is_bf16_not_torchs_float16_default():
    """bf16 needs no loss scaling; CUDA's autocast default (float16) would. Built here without a GPU: the context
    records its dtype even where it cannot enable itself."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CUDA is not available": the context is only inspected
        assert accel.autocast("cuda").fast_dtype == torch.bfloat16

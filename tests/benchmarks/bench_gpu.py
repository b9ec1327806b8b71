"""GPU fast path figures (mubench.core.accel), on CUDA only; elsewhere it says it was skipped and exits 0.

1. ResNet18 training throughput at 128 px (MUFAC's size, preprocessing and augmentation; synthetic uint8 images),
   images/s through the harness's own loader and loop, with the fast path and without it (float32, batches
   preprocessed on the CPU and copied one by one: the path before the fast path existed).
2. Wall time of the DLFD paper's grid, its nine methods with the Original and Retrain references, one seed, on a
   synthetic MUFAC root of the release's size (10,025 train, 1,539 val, 1,504 test images, 128 px), run as
   `mubench run --no-plots` in this process; the decoding of the images is done before the clock starts.

Run: .venv/bin/python tests/benchmarks/bench_gpu.py [--preset smoke] [--compare] [--no-grid]
(--compare also times the grid without the fast path: twice the device time.)
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from mubench.core import accel
from mubench.train.backbones import build_backbone
from mubench.data.splits import BatchLoader, Split
from mubench.core.losses import TaskKind, task_loss
from mubench.train.training import fit, make_optimizer

PAPER_METHODS = "finetune,neggrad,neggrad+,cf-k,eu-k,unsir,bad-teaching,scrub,dlfd"
MUFAC_ROWS = {"train": 10025, "val": 1539, "test": 1504}
BATCH_SIZES = (32, 128)  # MUFAC's recipe, and a batch that keeps the GPU busy


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synthetic_split(n: int, size: int = 128, classes: int = 8, seed: int = 0) -> Split:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    return Split(images, torch.randint(0, classes, (n,), generator=g), tuple(str(i) for i in range(n)))


def training_throughput(fast: bool, batch_size: int, steps: int = 256, images: int = 4096,
                        device: torch.device = torch.device("cuda")) -> float:
    """Images per second of ResNet18 training steps on MUFAC-like batches, the fast path on or off: epochs over
    `images` synthetic images until `steps` steps (the one copy of the images to the device included)."""
    from mubench.datasets.mufac import Mufac
    split = synthetic_split(images)
    epochs = max(1, -(-steps * batch_size // images))
    step = lambda m, b: task_loss(m(b[0]), b[1], TaskKind.MULTICLASS)  # noqa: E731
    with accel.fast_path(fast):
        model = build_backbone("resnet18", 8).to(device)
        optimizer = make_optimizer(model.parameters(), "sgd", 0.01)
        first = split.subset(torch.arange(min(images, 8 * batch_size)))
        warmup = BatchLoader(first, Mufac.preprocess, batch_size, shuffle=True, augment=True, device=device)
        fit(model, lambda epoch: warmup, step, optimizer, 1)
        loader = BatchLoader(split, Mufac.preprocess, batch_size, shuffle=True, augment=True, device=device,
                             drop_last=True)
        sync(device)
        started = time.perf_counter()
        fit(model, lambda epoch: loader, step, optimizer, epochs)
        sync(device)
        seconds = time.perf_counter() - started
    return epochs * len(loader) * batch_size / seconds


def write_mufac_root(root: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the fixture writers
    from fixtures_faces import make_mufac
    return make_mufac(root, **MUFAC_ROWS)


def grid_seconds(root: Path, out: Path, preset: str, fast: bool, methods: str = PAPER_METHODS,
                 device: torch.device = torch.device("cuda")) -> float:
    """Wall time of `mubench run` on the paper's methods, one seed, in this process."""
    from mubench.cli.main import main as cli
    args = ["run", "--tasks", "mufac", "--data-root", str(root), "--methods", methods, "--seeds", "0",
            "--preset", preset, "--device", device.type, "--out", str(out), "--cache-dir", str(out / "cache"),
            "--no-plots", "--quiet"]
    with accel.fast_path(fast):
        started = time.perf_counter()
        cli.main(args=args, standalone_mode=False)
        sync(device)
        return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=("default", "smoke"), default="default", help="the grid's preset")
    parser.add_argument("--compare", action="store_true", help="also time the grid without the fast path")
    parser.add_argument("--no-grid", action="store_true", help="throughput only")
    parser.add_argument("--steps", type=int, default=256, help="timed training steps per throughput figure")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_gpu: skipped, no CUDA device (the GPU fast path was not measured).")
        return 0
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    for batch_size in BATCH_SIZES:
        plain = training_throughput(False, batch_size, args.steps)
        fast = training_throughput(True, batch_size, args.steps)
        print(f"ResNet18 128 px training, batch {batch_size}: {plain:,.0f} images/s without the fast path, "
              f"{fast:,.0f} with it ({fast / plain:.2f}x)")
    if args.no_grid:
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["MUBENCH_CACHE"] = str(tmp / "mubench-cache")  # decoded images stay out of the home folder
        started = time.perf_counter()
        root = write_mufac_root(tmp / "mufac")
        from mubench.data.tasks import load_task
        load_task("mufac", args.preset, root)  # decodes once into the cache, before the clock starts
        print(f"synthetic MUFAC root written and decoded in {time.perf_counter() - started:.0f} s")
        modes = (True, False) if args.compare else (True,)
        for fast in modes:
            seconds = grid_seconds(root, tmp / f"out-{'fast' if fast else 'plain'}", args.preset, fast)
            print(f"paper grid (mufac, {args.preset}, {PAPER_METHODS} + original, retrain; seed 0): "
                  f"{seconds:.0f} s {'with' if fast else 'without'} the fast path")
    return 0


if __name__ == "__main__":
    sys.exit(main())

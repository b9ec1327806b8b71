"""ResNet18 training at 128 px with and without the GPU fast path (a figure, not a gate; CUDA only).

Run: .venv/bin/pytest tests/benchmarks/test_bench_gpu.py -m slow --benchmark-enable -s
The grid's wall time comes from the script beside it: .venv/bin/python tests/benchmarks/bench_gpu.py
"""
import pytest
import torch

from bench_gpu import training_throughput

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="the GPU fast path needs a CUDA device")]
results = {}


@pytest.mark.parametrize("fast", [False, True], ids=["float32", "fast-path"])
def test_training_throughput_with_and_without_the_fast_path(benchmark, fast):
    images_per_second = benchmark.pedantic(lambda: training_throughput(fast, 32), rounds=1, iterations=1)
    results[fast] = images_per_second
    benchmark.extra_info["images_per_second"] = images_per_second
    if len(results) == 2:
        print(f"\nfast path / float32 throughput: {results[True] / results[False]:.2f}x "
              f"({results[False]:,.0f} -> {results[True]:,.0f} images/s)")

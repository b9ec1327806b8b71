"""The bad-input table: every value a new user might get wrong is one sentence naming it, exit 2, before any work,
and the store is left exactly as it was (a copy of a real store, hashed file by file before and after)."""
import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import invoke

RUN = "run"
TUNE = "tune"


def _pretrained(tmp: Path, kind: str) -> Path:
    path = tmp / f"{kind}.pt"
    if kind == "text":
        path.write_text("not a checkpoint")
    elif kind == "tensor":
        torch.save(torch.zeros(3), path)
    elif kind == "shapes":
        torch.save({"conv1.weight": torch.zeros(8, 3, 3, 3)}, path)
    elif kind == "pickled-module":
        torch.save(torch.nn.Linear(2, 2), path)
    elif kind == "other-net":
        torch.save({"encoder.weight": torch.zeros(2, 2)}, path)
    return path


def _preset(tmp: Path, kind: str) -> Path:
    path = tmp / f"{kind}.json"
    entry = {"set": {"lr": "0.01"}}
    payload = {"format": 1, "tuning": {}, "methods": {"finetune": entry}}
    if kind == "not-json":
        path.write_text("{")
        return path
    if kind == "no-set":
        payload["methods"]["finetune"] = {"objective": 0.5}
    elif kind == "format":
        payload["format"] = 99
    elif kind == "out-of-range":
        payload["methods"]["finetune"] = {"set": {"lr": "-1"}}
    elif kind == "unknown-method":
        payload["methods"] = {"fintune": entry}
    path.write_text(json.dumps(payload))
    return path


M = ["--methods", "finetune"]
BAD = [  # (command, args, words the sentence must hold); {pretrained:KIND} and {preset:KIND} become files
    (RUN, [*M, "--set", "finetune.epochs=-3"], "finetune.epochs=-3 is out of range: epochs must be ≥ 1"),
    (RUN, [*M, "--set", "finetune.epochs=0"], "epochs must be ≥ 1"),
    (RUN, [*M, "--set", "finetune.lr=-0.1"], "lr must be > 0"),
    (RUN, [*M, "--set", "finetune.lr=0"], "lr must be > 0"),
    (RUN, [*M, "--set", "finetune.lr=nan"], "finetune.lr=nan is not a finite number"),
    (RUN, [*M, "--set", "finetune.lr=inf"], "is not a finite number"),
    (RUN, [*M, "--set", "finetune.epochs=1000000000"], "pass --yes if you mean it"),
    (RUN, [*M, "--set", "finetune.lr=100"], "far above the usual lr"),
    (RUN, [*M, "--set", "finetune.momentum=1"], "momentum must be ≥ 0 and < 1"),
    (RUN, [*M, "--set", "finetune.weight_decay=-0.0005"], "weight_decay must be ≥ 0"),
    (RUN, [*M, "--set", "finetune.batch_size=-1"], "batch_size must be ≥ 0 (0: the task recipe's)"),
    (RUN, ["--methods", "dlfd", "--set", "dlfd.lambda_end=1.5"], "lambda_end must be ≥ 0 and ≤ 1"),
    (RUN, ["--methods", "dlfd", "--set", "dlfd.steps=0"], "steps must be ≥ 1"),
    (RUN, ["--methods", "dlfd", "--set", "dlfd.alpha=0"], "alpha must be > 0"),
    (RUN, ["--methods", "dlfd", "--set", "dlfd.max_fs=-0.1"], "max_fs must be ≥ 0 and ≤ 1"),
    (RUN, ["--methods", "scrub", "--set", "scrub.temperature=0"], "temperature must be > 0"),
    (RUN, ["--methods", "scrub", "--set", "scrub.max_steps=-1"], "max_steps must be ≥ 0"),
    (RUN, ["--methods", "salun", "--set", "salun.mask_fraction=0"], "mask_fraction must be > 0 and ≤ 1"),
    (RUN, ["--methods", "salun", "--set", "salun.mask_fraction=1.2"], "mask_fraction must be > 0 and ≤ 1"),
    (RUN, ["--methods", "bad-teaching", "--set", "bad-teaching.retain_fraction=0"], "retain_fraction must be > 0"),
    (RUN, ["--methods", "unsir", "--set", "unsir.noise_steps=0"], "noise_steps must be ≥ 1"),
    (RUN, ["--methods", "ssd", "--set", "ssd.batch_size=0"], "batch_size must be ≥ 1"),
    (RUN, ["--methods", "neggrad+", "--set", "neggrad+.beta=2"], "beta must be ≥ 0 and ≤ 1"),
    (RUN, ["--methods", "cf-k", "--set", "cf-k.k=0"], "k must be ≥ 1"),
    (RUN, ["--methods", "l1-sparse", "--set", "l1-sparse.gamma=-1"], "gamma must be ≥ 0"),
    (RUN, [*M, "--task-set", "digits.noise=1.5"], "digits.noise=1.5 is out of range: noise must be ≥ 0 and < 1"),
    (RUN, [*M, "--task-set", "digits.noise=nan"], "is not a finite number"),
    (RUN, [*M, "--attack", "lira", "--shadows", "1000000"], "--shadows 1000000 is far above the usual"),
    (RUN, [*M, "--attack", "lira", "--shadows", "1"], "'--shadows': 1 is not in the range"),
    (RUN, [*M, "--threads", "0"], "'--threads': 0 is not in the range"),
    (RUN, [*M, "--head", "wide"], "'--head': 'wide' is not one of 'linear', 'mlp'"),
    (RUN, [*M, "--seeds", "-1"], "must be distinct non-negative integers"),
    (RUN, [*M, "--scenario", "class:3,class:3"], "twice"),
    (RUN, [*M, "--attack", "lirra"], "lirra"),
    (RUN, [*M, "--workers", "2", "--executor", "ray"], "--workers 2 is for --executor local"),
    (RUN, [*M, "--pretrained", "{pretrained:text}"], "is not a readable PyTorch state dict"),
    (RUN, [*M, "--pretrained", "{pretrained:tensor}"], "holds a Tensor, expected a state dict"),
    (RUN, [*M, "--pretrained", "{pretrained:shapes}"], "weights have other shapes (first: 'conv1.weight'"),
    (RUN, [*M, "--pretrained", "{pretrained:pickled-module}"], "save the model's state_dict() instead"),
    (RUN, [*M, "--pretrained", "{pretrained:other-net}"], "does not fit this backbone"),
    (RUN, [*M, "--preset-from", "{preset:not-json}"], "not JSON"),
    (RUN, [*M, "--preset-from", "{preset:no-set}"], "has no \"set\" mapping"),
    (RUN, [*M, "--preset-from", "{preset:format}"], "is not a preset written by `mubench tune`"),
    (RUN, [*M, "--preset-from", "{preset:out-of-range}"], "finetune.lr=-1.0 is out of range"),
    (RUN, [*M, "--preset-from", "{preset:unknown-method}"], "unknown method 'fintune'"),
    (TUNE, [*M, "--trials", "1000000000"], "--trials 1000000000 is far above the usual"),
    (TUNE, [*M, "--trials", "0"], "--trials 0 must be at least 1"),
    (TUNE, [*M, "--pretrained", "{pretrained:shapes}"], "weights have other shapes"),
    (TUNE, [*M, "--seed", "-2"], "'--seed': -2 is not in the range"),
    (TUNE, ["--methods", "original"], "declares no search space"),
]


@pytest.fixture(scope="module")
def store(smoke_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bad-inputs") / "out"
    shutil.copytree(smoke_run[0], out)
    return out


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _files(args: list[str], tmp: Path) -> list[str]:
    out = []
    for arg in args:
        if arg.startswith("{pretrained:"):
            arg = str(_pretrained(tmp, arg[len("{pretrained:"):-1]))
        elif arg.startswith("{preset:"):
            arg = str(_preset(tmp, arg[len("{preset:"):-1]))
        out.append(arg)
    return out


def test_the_table_is_as_large_as_promised():
    assert len(BAD) >= 40 and len({(c, tuple(a)) for c, a, _ in BAD}) == len(BAD)


@pytest.mark.parametrize("command, args, words", BAD, ids=[" ".join(a[2:] if a[:1] == ["--methods"] else a)[:60]
                                                           for _, a, _ in BAD])
def test_a_bad_input_is_one_sentence_exit_2_and_the_store_is_unchanged(command, args, words, store, tmp_path):
    before = _snapshot(store)
    result = invoke(command, "--out", str(store), *_files(args, tmp_path))
    assert result.exit_code == 2, result.output + result.stderr
    assert words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert _snapshot(store) == before


def test_yes_lets_a_deliberate_large_value_through_and_still_refuses_an_invalid_one(tmp_path):
    from mubench.harness.plan import method_specs
    (spec,) = method_specs(["finetune"], ["finetune.epochs=5000"], references=False, unusual_ok=True)
    assert dict(spec.overrides) == {"epochs": 5000}
    from mubench.core.errors import MubenchError
    with pytest.raises(MubenchError, match="epochs must be ≥ 1"):
        method_specs(["finetune"], ["finetune.epochs=-1"], references=False, unusual_ok=True)

"""The one schema between a run and its boards: the experiment and tag prefix a run writes, the board a cell belongs
to, and the names of the artifacts a run leaves for the report. Whatever writes these and whatever reads them
imports them from here."""
from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

EXPERIMENT = "mubench"
REFERENCES = ("original", "retrain")  # the rows every board carries, run as references (trained on all / on retain)
TAG = "mubench."  # prefix of every tag the suite writes


class BoardKey(NamedTuple):
    """One board per task × backbone × preset × head × pretrained weights × forgetting scenario (× torch threads,
    when a store holds cells run on several thread counts: CPU results depend on it). `BoardKey(*prefix)` fills the
    defaults in."""
    task: str
    backbone: str
    preset: str
    head: str = "linear"
    pretrained: str = "none"  # the first 12 hex digits of the weights file's SHA-256
    scenario: str = "random"
    board_threads: str = ""  # empty unless the store holds this board's cells on several thread counts

    @property
    def class_wise(self) -> bool:
        return self.scenario.startswith("class:")


def selected(key: BoardKey, only) -> bool:
    """Whether board `key` is one of `only` (None: all): board keys or prefixes of one; a key without a thread count
    selects its board whatever the thread count."""
    if only is None:
        return True
    for prefix in only:
        prefix = tuple(prefix)
        if len(prefix) == len(BoardKey._fields) and not prefix[-1]:
            prefix = prefix[:-1]
        if tuple(key[:len(prefix)]) == prefix:
            return True
    return False


def board_name(key: tuple) -> str:
    """The board's file name, e.g. `digits-resnet18-class3.md`."""
    key = BoardKey(*key)
    return (f"{key.task}-{key.backbone}" + ("" if key.scenario == "random" else "-" + key.scenario.replace(":", ""))
            + ("" if key.preset == "default" else f"-{key.preset}")
            + ("" if key.head == "linear" else f"-head-{key.head}")
            + ("" if key.pretrained == "none" else f"-pretrained-{key.pretrained[:8]}")
            + (f"-threads-{key.board_threads}" if key.board_threads else "") + ".md")


BOARD_PNG_SUFFIX = "-scatter.png"
TSNE_PNG = "tsne.png"  # per seed folder: the t-SNE of every model on the board
ATTACK_PNG = "attack-scores.png"  # per seed folder: the per-example attack scores' histograms
ATTACK_SCORES = "attack-scores.npz"  # a cell run's artifact: per-example scores, members and non-members (report)


def file_stem(label: str) -> str:
    """A row label as a file name: `dlfd[no-ot]` -> `dlfd-no-ot`."""
    return re.sub(r"[^\w.+-]+", "-", label).strip("-")


def plots_stem(task: str, backbone: str, preset: str, scenario: str = "random") -> str:
    """The folder of a board's figures: one per task × backbone × preset × scenario."""
    return board_name(BoardKey(task, backbone, preset, scenario=scenario))[:-len(".md")]


def seed_folder(out: Path, task: str, backbone: str, preset: str, seed: int, scenario: str = "random") -> Path:
    return Path(out) / "plots" / plots_stem(task, backbone, preset, scenario) / f"s{seed}"


def losses_png(label: str) -> str:
    """A cell run's artifact: forget vs test per-sample losses of Original, Retrain and the method."""
    return f"{file_stem(label)}-losses.png"


def features_npz(label: str) -> str:
    """A cell's penultimate features on the seed's subsample (`features`) and each point's role (`roles`)."""
    return f"{file_stem(label)}-features.npz"

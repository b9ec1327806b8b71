"""torchvision backbones with a task-sized head, penultimate-feature access and named stages."""
from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from mubench.core.errors import MubenchError
from mubench.core.registry import Registry

BACKBONES: Registry = Registry("backbone", {
    "resnet18": "mubench.train.backbones:resnet18",
    "densenet121": "mubench.train.backbones:densenet121",
    "efficientnet_b0": "mubench.train.backbones:efficientnet_b0",
})
HEADS = ("linear", "mlp")


class Classifier(nn.Module):
    """body (torchvision trunk, pooled) -> head (ending in one Linear).

    `features(x)` is the input of the last Linear layer: the penultimate features DLFD and the
    plots use. `stages()` lists the trunk's blocks from input to output, the head last (CF-k, EU-k).
    Outputs are float32 also under bf16 autocast (mubench.core.accel), so what a method computes from them is float32.
    """

    def __init__(self, body: nn.Module, head: nn.Sequential, stage_names: list[str]):
        super().__init__()
        self.body, self.head = body, head
        self.stage_names = stage_names

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head[:-1](self.body(x)).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x)).float()

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.features(x)
        return self.head[-1](feats).float(), feats

    def stages(self) -> list[tuple[str, list[nn.Module]]]:
        out = []
        for name in self.stage_names:
            modules = [self.body.get_submodule(part) for part in name.split("+")]
            out.append((name, modules))
        return out + [("head", [self.head])]


def make_head(in_features: int, num_outputs: int, head: str, dropout: float = 0.0) -> nn.Sequential:
    if head == "linear":
        layers = [nn.Dropout(dropout)] if dropout else []
        return nn.Sequential(*layers, nn.Linear(in_features, num_outputs))
    if head == "mlp":  # the DLFD authors' head: 512 -> 256 -> 128 -> C
        return nn.Sequential(nn.Linear(in_features, 256), nn.ReLU(), nn.Dropout(0.5),
                             nn.Linear(256, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, num_outputs))
    raise MubenchError(f"unknown head {head!r}; valid heads: {', '.join(HEADS)}.")


@BACKBONES.register("resnet18")
def resnet18(num_outputs: int, head: str = "linear") -> Classifier:
    body = torchvision.models.resnet18(weights=None)
    width = body.fc.in_features
    body.fc = nn.Identity()
    stages = ["conv1+bn1", "layer1", "layer2", "layer3", "layer4"]
    return Classifier(body, make_head(width, num_outputs, head), stages)


@BACKBONES.register("densenet121")
def densenet121(num_outputs: int, head: str = "linear") -> Classifier:
    body = torchvision.models.densenet121(weights=None)
    width = body.classifier.in_features
    body.classifier = nn.Identity()
    stages = ["features.conv0+features.norm0", "features.denseblock1+features.transition1",
              "features.denseblock2+features.transition2", "features.denseblock3+features.transition3",
              "features.denseblock4+features.norm5"]
    return Classifier(body, make_head(width, num_outputs, head), stages)


@BACKBONES.register("efficientnet_b0")
def efficientnet_b0(num_outputs: int, head: str = "linear") -> Classifier:
    body = torchvision.models.efficientnet_b0(weights=None)
    width = body.classifier[1].in_features
    body.classifier = nn.Identity()
    stages = [f"features.{i}" for i in range(9)]
    return Classifier(body, make_head(width, num_outputs, head, dropout=0.2), stages)


def build_backbone(name: str, num_outputs: int, head: str = "linear", pretrained: Path | None = None) -> Classifier:
    if head not in HEADS:
        raise MubenchError(f"unknown head {head!r}; valid heads: {', '.join(HEADS)}.")
    model = BACKBONES.get(name)(num_outputs, head)
    if pretrained is not None:
        load_pretrained(model, Path(pretrained))
    return model


def check_pretrained(path: Path, backbones: list[str], head: str) -> None:
    """Load `path` into each backbone now, so a file that does not fit is refused before the store is opened."""
    for name in backbones:
        build_backbone(name, 2, head, path)


def load_pretrained(model: Classifier, path: Path) -> None:
    """Load a local state dict into the trunk: torchvision's key layout, or a mubench Classifier's.

    The classifier layer (fc / classifier) is skipped: the head is sized for the task.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for a file that is not a checkpoint
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "weights only" in reason.lower():
            reason = "it holds Python objects besides tensors; save the model's state_dict() instead"
        raise MubenchError(f"--pretrained {str(path)!r} is not a readable PyTorch state dict ({reason}).") from None
    if not isinstance(state, dict):
        raise MubenchError(f"--pretrained {str(path)!r} holds a {type(state).__name__}, expected a state dict.")
    if any(k.startswith("body.") for k in state):
        state = {k[len("body."):]: v for k, v in state.items() if k.startswith("body.")}
    state = {k: v for k, v in state.items() if not k.startswith(("fc.", "classifier."))}
    expected = model.body.state_dict()
    misfit = [k for k, v in state.items() if k in expected and getattr(v, "shape", None) != expected[k].shape]
    if misfit:
        raise MubenchError(f"--pretrained {str(path)!r} does not fit this backbone: {len(misfit)} weights have other "
                           f"shapes (first: {misfit[0]!r}, {getattr(state[misfit[0]], 'shape', 'no tensor')} instead of "
                           f"{tuple(expected[misfit[0]].shape)}).")
    result = model.body.load_state_dict(state, strict=False)
    if result.missing_keys:
        raise MubenchError(f"--pretrained {str(path)!r} does not fit this backbone: {len(result.missing_keys)} "
                           f"weights missing (first: {result.missing_keys[0]!r}).")

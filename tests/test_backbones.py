import pytest
import torch
import torchvision

from mubench.train.backbones import build_backbone
from mubench.core.errors import MubenchError


@pytest.mark.parametrize("name", ["resnet18", "densenet121", "efficientnet_b0"])
@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_outputs_features_and_stages(name, head):
    model = build_backbone(name, 7, head).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits, feats = model.forward_with_features(x)
        assert torch.equal(logits, model(x))
    assert logits.shape == (2, 7)
    assert feats.shape == (2, model.head[-1].in_features)
    if head == "mlp":
        assert feats.shape[1] == 128
    stages = model.stages()
    assert stages[-1][0] == "head" and len(stages) >= 5
    covered = {id(p) for _, modules in stages for m in modules for p in m.parameters()}
    assert covered == {id(p) for p in model.parameters()}, "stages must cover every parameter"


def test_pretrained_torchvision_state_dict_loads_into_the_trunk(tmp_path):
    source = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pt"
    torch.save(source.state_dict(), path)
    model = build_backbone("resnet18", 3, pretrained=path)
    assert torch.equal(model.body.conv1.weight, source.conv1.weight)
    assert model.head[-1].out_features == 3


def test_pretrained_wrong_file_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"nonsense")
    with pytest.raises(MubenchError, match="not a readable PyTorch state dict"):
        build_backbone("resnet18", 3, pretrained=path)
    torch.save(torchvision.models.densenet121(weights=None).state_dict(), path)
    with pytest.raises(MubenchError, match="does not fit this backbone"):
        build_backbone("resnet18", 3, pretrained=path)


@pytest.mark.parametrize("name", [
    "resnet18",
    pytest.param("efficientnet_b0", marks=pytest.mark.slow),  # minutes on 2 CPU cores; its shapes are tested above
    pytest.param("densenet121", marks=pytest.mark.slow),  # over two minutes on 2 CPU cores
])
def test_smoke_run_on_each_backbone(name, tmp_path, cli):
    result = cli("run", "--preset", "smoke", "--methods", "original,retrain,finetune", "--backbones", name,
                 "--out", str(tmp_path), "--quiet")
    assert result.exit_code == 0
    assert (tmp_path / "leaderboards" / f"digits-{name}-smoke.md").exists()


def test_efficientnet_keeps_torchvisions_classifier_dropout():
    model = build_backbone("efficientnet_b0", 5)
    dropouts = [m.p for m in model.head if isinstance(m, torch.nn.Dropout)]
    assert dropouts == [torchvision.models.efficientnet_b0().classifier[0].p] == [0.2]
    assert not any(isinstance(m, torch.nn.Dropout) for m in build_backbone("resnet18", 5).head)


class NotAStateDict:
    """A pickled object: torch.load(weights_only=True) refuses to build it."""


def test_a_pretrained_file_that_would_run_code_when_unpickled_is_refused(tmp_path):
    path = tmp_path / "pickled.pt"
    torch.save({"conv1.weight": torch.zeros(1), "payload": NotAStateDict()}, path)
    with pytest.raises(MubenchError, match="not a readable PyTorch state dict"):
        build_backbone("resnet18", 3, pretrained=path)


def test_pretrained_weights_saved_on_a_gpu_load_on_a_machine_without_one(tmp_path, monkeypatch):
    import torch.serialization
    source = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18-gpu.pt"
    with monkeypatch.context() as patch:  # tag every storage as CUDA's, as a GPU run's torch.save does
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save(source.state_dict(), path)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=True)  # the file really names CUDA storages
    model = build_backbone("resnet18", 3, pretrained=path)
    assert torch.equal(model.body.conv1.weight, source.conv1.weight) and model.body.conv1.weight.device.type == "cpu"

"""torchxrayvision backbones: the registry agrees with torchxrayvision, its state dicts load
(local file or its own download from a local HTTP server), bad files are named, its weight
cache is read weights-only (a planted pickle is refused, never run) and the file read is
recorded by sha256."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from deepcovid.models.backbones import create_backbone
from deepcovid.models.xrv import XRV_SCALE, XRV_WEIGHTS, UnsafeWeightsError
from deepcovid.utils.files import sha256_of
from tests.conftest import best_checkpoint, tiny_overrides

xrv = pytest.importorskip("torchxrayvision")


def random_xrv_densenet(path: Path, seed: int = 0) -> dict[str, torch.Tensor]:
    """A torchxrayvision DenseNet's state dict with random weights and its operating-point
    buffer (as a downloaded model carries it), saved with torch.save."""
    torch.manual_seed(seed)
    model = xrv.models.DenseNet(weights=None)
    model.op_threshs = torch.rand(18)
    torch.save(model.state_dict(), path)
    return model.state_dict()


def test_registry_agrees_with_torchxrayvision() -> None:
    for name, weights in XRV_WEIGHTS.items():
        entry = xrv.models.model_urls[name]
        assert entry["input_resolution"] == weights.input_size
        assert name.startswith(weights.architecture)
        assert len(entry["labels"]) == 18
    published = {n for n in xrv.models.model_urls if n.startswith(("densenet121-", "resnet50-"))}
    assert published == set(XRV_WEIGHTS)


def test_local_state_dict_loads_with_a_two_class_head_and_xrv_preprocessing(tmp_path: Path):
    state = random_xrv_densenet(tmp_path / "xrv.pt")
    built = create_backbone("densenet121-res224-all", weights_path=str(tmp_path / "xrv.pt"))
    net = built.net
    torch.testing.assert_close(net.features.conv0.weight, state["features.conv0.weight"])
    torch.testing.assert_close(net.features.norm5.running_var, state["features.norm5.running_var"])
    assert net.classifier.out_features == 2 and built.target_layer == "features"
    p = built.preprocessing
    assert (p.channels, p.image_size, p.crop_ratio) == (1, 224, 1.0)
    # a pixel of 0 maps to -1024 and one of 255 to 1024, torchxrayvision's scaling
    assert (0.0 - p.mean[0]) / p.std[0] == -1024 and (1.0 - p.mean[0]) / p.std[0] == 1024
    assert XRV_SCALE == 2048
    assert "CheXpert" in built.pretrained_on and "MIMIC-CXR" in built.pretrained_on
    net.eval()
    logits = net(torch.zeros(2, 1, 64, 64))
    assert logits.shape == (2, 2)
    # the same features as torchxrayvision's own model on the same weights
    reference = xrv.models.DenseNet(weights=None)
    reference.load_state_dict({k: v for k, v in state.items() if k != "op_threshs"}, strict=False)
    reference.eval()
    x = torch.randn(1, 1, 64, 64)
    torch.testing.assert_close(net.features(x), reference.features(x))


def test_safetensors_and_wrong_weights_are_named(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = random_xrv_densenet(tmp_path / "xrv.pt", seed=1)
    save_file(state, tmp_path / "xrv.safetensors")
    built = create_backbone(
        "densenet121-res224-chex", weights_path=str(tmp_path / "xrv.safetensors")
    )
    torch.testing.assert_close(built.net.features.conv0.weight, state["features.conv0.weight"])
    assert built.pretrained_on == ("CheXpert",)
    with pytest.raises(ValueError, match=r"xrv\.pt: not the weights of torchxrayvision's resnet50"):
        create_backbone("resnet50-res512-all", weights_path=str(tmp_path / "xrv.pt"))


def test_pretrained_resnet_through_torchxrayvisions_download(
    http_folder: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torchxrayvision's own download code fetches the file (from a local server), its ResNet
    wrapper loads it, and the backbone takes its weights (``model.`` prefix, op buffer)."""
    folder, url = http_folder
    import torchvision

    torch.manual_seed(2)
    resnet = torchvision.models.resnet50(num_classes=18)
    resnet.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    torch.save(resnet.state_dict(), folder / "resnet.pt")
    entry = dict(xrv.models.model_urls["resnet50-res512-all"], weights_url=f"{url}/resnet.pt")
    monkeypatch.setitem(xrv.models.model_urls, "resnet50-res512-all", entry)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    built = create_backbone("resnet50-res512-all", pretrained=True)
    assert (tmp_path / "home" / ".torchxrayvision" / "models_data" / "resnet.pt").is_file()
    torch.testing.assert_close(built.net.conv1.weight, resnet.conv1.weight)
    torch.testing.assert_close(built.net.layer4[2].bn3.weight, resnet.layer4[2].bn3.weight)
    assert built.net.fc.out_features == 2 and built.target_layer == "layer4"
    assert built.preprocessing.image_size == 512 and "VinDr-CXR" in built.pretrained_on
    assert built.weights_file.sha256 == sha256_of(folder / "resnet.pt")


def test_download_failure_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    entry = dict(
        xrv.models.model_urls["densenet121-res224-all"], weights_url="http://127.0.0.1:9/x.pt"
    )
    monkeypatch.setitem(xrv.models.model_urls, "densenet121-res224-all", entry)
    monkeypatch.setitem(xrv.models.model_urls, "all", entry)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(RuntimeError, match="model.weights_path=FILE"):
        create_backbone("densenet121-res224-all", pretrained=True)


def test_random_initialisation_needs_no_weights() -> None:
    built = create_backbone("densenet121-res224-pc", pretrained=False)
    assert built.net.features.conv0.in_channels == 1 and built.net.classifier.out_features == 2


class Payload:
    """Unpickling this writes ``marker``: what a planted weights file would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def cache_file(home: Path, name: str) -> Path:
    """Where torchxrayvision keeps ``name``'s download under ``home``."""
    url = xrv.models.model_urls[name]["weights_url"]
    return home / ".torchxrayvision" / "models_data" / url.rsplit("/", 1)[-1]


def random_xrv_model(seed: int = 0) -> torch.nn.Module:
    """A torchxrayvision DenseNet with random weights, as its downloads pickle the model."""
    torch.manual_seed(seed)
    model = xrv.models.DenseNet(weights=None)
    model.op_threshs = torch.rand(18)
    return model


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
@pytest.mark.parametrize("planted", ["bare", "inside_a_model"])
def test_a_planted_pickle_in_the_weight_cache_is_refused_and_never_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, planted: str, zipped: bool
) -> None:
    marker = tmp_path / "payload-ran"
    cached = cache_file(tmp_path / "home", "densenet121-res224-all")
    cached.parent.mkdir(parents=True)
    content = Payload(marker)
    if planted == "inside_a_model":
        content = random_xrv_model()
        content.extra = Payload(marker)
    torch.save(content, cached, _use_new_zipfile_serialization=zipped)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(UnsafeWeightsError, match=rf"{cached.name}: refused.*model\.weights_path"):
        create_backbone("densenet121-res224-all", pretrained=True)
    assert not marker.exists()


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_a_pickled_torchxrayvision_model_in_the_cache_loads_weights_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zipped: bool
) -> None:
    """The format of torchxrayvision's DenseNet downloads (the whole model pickled, in torch's
    zip or legacy format) loads without torchxrayvision's loader; the file is recorded by
    sha256."""
    model = random_xrv_model(seed=3)
    cached = cache_file(tmp_path / "home", "densenet121-res224-chex")
    cached.parent.mkdir(parents=True)
    torch.save(model, cached, _use_new_zipfile_serialization=zipped)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    built = create_backbone("densenet121-res224-chex", pretrained=True)
    torch.testing.assert_close(built.net.features.conv0.weight, model.features.conv0.weight)
    norm = built.net.features.denseblock4.denselayer16.norm2
    torch.testing.assert_close(
        norm.running_mean, model.features.denseblock4.denselayer16.norm2.running_mean
    )
    assert built.weights_file.sha256 == sha256_of(cached)
    assert built.weights_file.path == str(cached.resolve())


def test_a_damaged_cache_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cached = cache_file(tmp_path / "home", "densenet121-res224-all")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"PK\x03\x04 cut short")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(RuntimeError, match=rf"{cached.name}: not a readable weights file"):
        create_backbone("densenet121-res224-all", pretrained=True)


@pytest.mark.slow
def test_the_weights_file_read_is_recorded_in_the_checkpoint(
    covidx5k_shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deepcovid.models.checkpoints import read_record
    from deepcovid.train import train
    from deepcovid.utils.config import compose_config

    cached = cache_file(tmp_path / "home", "densenet121-res224-all")
    cached.parent.mkdir(parents=True)
    torch.save(random_xrv_model(seed=4), cached)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    out = tmp_path / "run"
    overrides = [o for o in tiny_overrides(covidx5k_shared, out) if o != "model.pretrained=false"]
    train(compose_config("train", [*overrides, "model=xrv", "model.pretrained=true"], str(out)))
    record = read_record(best_checkpoint(out))
    assert record.weights_file.sha256 == sha256_of(cached)
    assert "CheXpert" in record.pretrained_on

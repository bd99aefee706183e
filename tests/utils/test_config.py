"""The real configs compose for every option of every group."""

from pathlib import Path

import hydra
import pytest
from omegaconf import OmegaConf

from deepcovid.utils.config import compose_config, manifest_file, manifest_sources
from tests.conftest import CONFIG_DIR

GROUP_OPTIONS = {
    group: sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))
    for group in (
        "model",
        "trainer",
        "logger",
        "callbacks",
        "debug",
        "experiment",
        "data",
        "hparams_search",
        "explainer",
        "metrics",
        "failures",
    )
}


@pytest.mark.parametrize(
    "override",
    [
        f"{group}={option}"
        for group, options in GROUP_OPTIONS.items()
        for option in options
        if option != "base"
    ],
)
def test_every_option_composes_and_resolves(override: str, tmp_path: Path) -> None:
    cfg = compose_config("train", [override], output_dir=str(tmp_path))
    OmegaConf.resolve(cfg)  # no missing or broken interpolation
    assert cfg.data._target_.endswith("XrayDataModule")
    assert cfg.model._target_.endswith("CovidClassifier")


@pytest.mark.parametrize("model", ["resnet18", "resnet50", "squeezenet", "densenet121", "timm"])
def test_model_configs_instantiate(model: str, tmp_path: Path) -> None:
    cfg = compose_config("train", [f"model={model}", "model.pretrained=false"], str(tmp_path))
    classifier = hydra.utils.instantiate(cfg.model)
    assert classifier.hparams.backbone == cfg.model.backbone
    optimizer = classifier.configure_optimizers()
    assert optimizer.defaults["lr"] == 1e-4  # the paper's Adam learning rate


def test_paper_defaults(tmp_path: Path) -> None:
    cfg = compose_config("train", ["model.pretrained=false"], str(tmp_path))
    assert cfg.data.image_size is None and cfg.data.batch_size == 20  # the backbone's size
    model = hydra.utils.instantiate(cfg.model)
    assert model.preprocessing.image_size == 224 and model.preprocessing.crop_ratio == 0.875
    assert cfg.model.finetune == "head" and cfg.trainer.max_epochs == 100
    assert cfg.model.threshold == 0.2 and cfg.model.optimizer.lr == 1e-4
    paper = compose_config("train", ["experiment=deepcovid_paper"], str(tmp_path))
    assert paper.data.image_size == 224 and paper.model.pretrained is True
    assert paper.data.near_duplicates is True


def test_trainer_and_logger_instantiate(tmp_path: Path) -> None:
    from deepcovid.utils.instantiate import instantiate_loggers

    cfg = compose_config("train", ["trainer=cpu", "logger=tensorboard"], str(tmp_path))
    trainer = hydra.utils.instantiate(cfg.trainer, logger=instantiate_loggers(cfg.logger))
    assert trainer.max_epochs == 100 and type(trainer.logger).__name__ == "TensorBoardLogger"
    assert instantiate_loggers(compose_config("train", ["logger=none"], str(tmp_path)).logger) == []


@pytest.mark.parametrize(
    ("config", "overrides"),
    [
        ("train", []),
        ("eval", ["ckpt_path=x.ckpt"]),
        ("predict", ["ckpt_path=x.ckpt", "inputs=in", "explainer=occlusion"]),
        ("export", ["ckpt_path=x.ckpt"]),
    ],
)
def test_every_entry_point_config_composes_with_a_sweep_subdir(
    config: str, overrides: list[str], tmp_path: Path
) -> None:
    from hydra import compose, initialize_config_module

    with initialize_config_module("deepcovid.conf", version_base="1.3"):
        cfg = compose(config, overrides, return_hydra_config=True)
    cfg.hydra.job.num = 3
    subdir = OmegaConf.to_container(cfg.hydra.sweep, resolve=True)["subdir"]
    expected = {"train": "resnet18", "eval": "eval", "predict": "predict", "export": "export"}
    assert subdir == f"3-{expected[config]}"


def test_the_monitored_metric_is_named_once() -> None:
    lines = [
        (path.relative_to(CONFIG_DIR), line)
        for path in sorted(Path(CONFIG_DIR).rglob("*.yaml"))
        for line in path.read_text().splitlines()
        if "val/auroc" in line.split("#")[0]
    ]
    assert [str(path) for path, _ in lines] == ["train.yaml"]
    cfg = compose_config("train", ["hparams_search=optuna"])
    assert cfg.callbacks.model_checkpoint.monitor == cfg.model.scheduler_monitor == "val/auroc"
    assert cfg.optimized_metric == "val/auroc"


def test_the_authors_script_as_an_experiment(tmp_path: Path) -> None:
    cfg = compose_config("train", ["experiment=deepcovid_code", "model.pretrained=false"])
    model = hydra.utils.instantiate(cfg.model)
    optimizers = model.configure_optimizers()
    optimizer, scheduler = optimizers["optimizer"], optimizers["lr_scheduler"]["scheduler"]
    assert type(optimizer).__name__ == "SGD" and optimizer.defaults["momentum"] == 0.9
    for _ in range(21):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-7)  # StepLR(7, 0.1) at epoch 21
    assert cfg.monitor == "val/accuracy" and not cfg.model.frozen_batchnorm
    assert cfg.data.crop_ratio == 1.0 and list(cfg.data.augmentation.crop_scale) == [0.08, 1.0]
    assert cfg.data.augmentation.hflip_prob == 0 and cfg.data.augmentation.rotation_degrees == 0


def test_one_reading_of_data_manifest(tmp_path: Path) -> None:
    assert manifest_file(tmp_path, "auto") is None  # no ROOT/manifest.csv: the folders are read
    (tmp_path / "manifest.csv").write_text("path,label,source\na.png,covid,x\nb.png,non,y\n")
    assert manifest_file(tmp_path, "auto") == tmp_path / "manifest.csv"
    for none in (None, "none", "null"):
        assert manifest_file(tmp_path, none) is None
        with pytest.raises(FileNotFoundError, match=f"data.manifest={none}"):
            manifest_sources(str(tmp_path), none)  # no manifest: no sources to leave out
    assert manifest_sources(str(tmp_path), "auto") == "'x','y'"
    assert manifest_file(tmp_path, "other.csv") == Path("other.csv")


def test_one_meaning_per_name(tmp_path: Path) -> None:
    """``external`` is the commands' switch (another site's data); the data's own knob says how
    such data is split; the full-precision switch has the model's name in evaluate too."""
    cfg = compose_config("eval", ["ckpt_path=x.ckpt"], str(tmp_path))
    assert cfg.external is False and "external" not in cfg.data
    assert cfg.data.external_splits is None
    assert "full_precision" not in cfg and cfg.full_precision_eval is True
    assert "full_precision_eval" in compose_config("train", [], str(tmp_path)).model

"""The LightningModule: a backbone with a 2-class head that outputs P(COVID), and writes its
record (preprocessing, thresholds, data, val predictions) into every checkpoint."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import lightning as L
import pandas as pd
import torch
from lightning.pytorch.loggers import MLFlowLogger, WandbLogger
from omegaconf import MISSING
from torch import nn
from torch.nn import functional as F

from deepcovid.metrics.epoch import epoch_metrics
from deepcovid.metrics.predictions import Predictions, PredictionStore, predictions_frame
from deepcovid.metrics.scores import prob_covid
from deepcovid.metrics.summary import MetricSettings, choose_thresholds
from deepcovid.models.backbones import Finetune, create_backbone, freeze_all_but_head
from deepcovid.models.record import CHECKPOINT_KEY, ModelRecord
from deepcovid.utils.choices import checked_choice
from deepcovid.utils.system import strict_float32

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], Any]
STAGES = ("val", "test")
# What the classifier logs: the names a checkpoint monitor or a sweep objective may use.
LOGGED_METRICS = (
    "train/loss",
    "val/loss",
    "val/auroc",
    "val/average_precision",
    "val/sensitivity",
    "val/specificity",
    "val/accuracy",
)


@dataclass
class ModelConfig:
    """``conf/model``'s schema (registered in ``deepcovid.conf``): Hydra checks each key's type,
    and ``finetune`` against its choices, when it composes the config (the yaml gives the
    values; the optimizer and scheduler are configs of their own)."""

    _target_: str = f"{__name__}.CovidClassifier"
    backbone: str = MISSING
    pretrained: bool = MISSING
    weights_path: str | None = MISSING
    finetune: Finetune = MISSING
    threshold: float = MISSING
    optimizer: Any = MISSING
    scheduler: Any = MISSING
    scheduler_monitor: str = MISSING
    channels_last: bool = MISSING
    compile: bool = MISSING
    compile_backend: str = MISSING
    full_precision_eval: bool = MISSING
    frozen_batchnorm: bool = MISSING


class CovidClassifier(L.LightningModule):
    """Transfer-learning classifier: COVID (class 1) vs non-COVID (class 0).

    ``finetune="head"`` is the paper's protocol: only the new last layer learns, and the
    frozen backbone stays in eval mode (BatchNorm statistics and dropout untouched) unless
    ``frozen_batchnorm=False`` (the authors' script: the frozen backbone runs in train mode, so
    its BatchNorm running statistics still move).

    ``full_precision_eval``: validation and test run the network in float32 even under mixed
    precision training, so scores and thresholds do not depend on the training precision.

    Speed switches: ``channels_last`` stores weights and inputs NHWC (faster convolutions on
    tensor cores); ``compile`` compiles the network with ``torch.compile`` (its
    ``compile_backend``: ``inductor`` generates kernels, ``aot_eager`` only traces, to check a
    network compiles without waiting for code generation) when the trainer sets the model up
    (in place: checkpoints keep their plain parameter names).
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        pretrained: bool = True,
        weights_path: str | None = None,
        finetune: str = "head",
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        scheduler_monitor: str = "val/auroc",
        threshold: float = 0.5,
        num_classes: int = 2,
        channels_last: bool = False,
        compile: bool = False,
        compile_backend: str = "inductor",
        full_precision_eval: bool = True,
        frozen_batchnorm: bool = True,
    ) -> None:
        super().__init__()
        finetune = checked_choice("model.finetune", finetune, Finetune)  # recorded as text
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        built = create_backbone(backbone, pretrained, weights_path, num_classes)
        self.net = built.net
        self.head_name = built.head
        self.target_layer = built.target_layer
        self.preprocessing = built.preprocessing  # the backbone's; the run's is recorded
        self.weights_corpora = built.pretrained_on  # of the backbone's weights, loaded or not
        self.weights_file = built.weights_file
        if finetune == "head":
            freeze_all_but_head(built)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net.to(memory_format=self.memory_format)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        # Class weights of the loss (data.balance=weighted_loss): training state only, so not
        # saved in checkpoints, which then load the same whatever the balancing was.
        self.register_buffer("class_weights", None, persistent=False)
        self.predictions = nn.ModuleDict({stage: PredictionStore() for stage in STAGES})
        self.compiled = False
        self.settings = MetricSettings()  # threshold rules recorded in checkpoints (train sets it)
        self.latest_val: tuple[int, int, pd.DataFrame] | None = None  # step, epoch, predictions
        self.record: ModelRecord | None = None  # read from the checkpoint this model came from

    # ---- model ----------------------------------------------------------------------------
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of shape (N, 2)."""
        return self.net(images.contiguous(memory_format=self.memory_format))

    def prob_covid(self, images: torch.Tensor) -> torch.Tensor:
        """P(COVID) of shape (N,), in float32."""
        return prob_covid(self(images))

    def train(self, mode: bool = True) -> CovidClassifier:
        super().train(mode)
        if mode and self.hparams.finetune == "head" and self.hparams.frozen_batchnorm:
            self.net.eval()
            self.net.get_submodule(self.head_name).train()
        return self

    # ---- fit ------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        """Apply the fine-tuning modes above. Lightning (≥ 2.2) never calls ``train()``: it
        keeps each submodule's mode as found, so a frozen backbone would otherwise run (and
        update) its BatchNorm statistics in training mode."""
        self.train()

    def configure_model(self) -> None:
        """Compile the network in place when ``compile=True`` (once, in every process)."""
        if self.hparams.compile and not self.compiled:
            self.net.compile(backend=self.hparams.compile_backend)
            self.compiled = True

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        weights = datamodule.loss_weights() if hasattr(datamodule, "loss_weights") else None
        if weights is not None:
            self.class_weights = weights.to(self.device)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy, class-weighted when ``data.balance=weighted_loss``."""
        return F.cross_entropy(logits.float(), labels, weight=self.class_weights)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.loss(self(batch["image"]), batch["label"])
        # Not on the progress bar: Lightning reads progress-bar values with .item() every
        # step, a GPU sync that cost up to a third of the training speed on an H200.
        self.log("train/loss", loss, on_step=True, on_epoch=True, batch_size=len(batch["label"]))
        return loss

    def evaluation_precision(self) -> contextlib.AbstractContextManager:
        """float32 for val and test when ``full_precision_eval`` (autocast and TF32 off), else as
        is."""
        if self.hparams.full_precision_eval:
            return strict_float32(self.device.type)
        return contextlib.nullcontext()

    def evaluation_step(self, stage: str, batch: dict[str, torch.Tensor]) -> None:
        with self.evaluation_precision():
            logits = self(
                batch["image"].float() if self.hparams.full_precision_eval else batch["image"]
            )
        loss = self.loss(logits, batch["label"])
        self.log(
            f"{stage}/loss", loss, on_epoch=True, sync_dist=True, batch_size=len(batch["label"])
        )
        self.predictions[stage].update(batch["index"], batch["label"], logits)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.evaluation_step("val", batch)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.evaluation_step("test", batch)

    def on_validation_epoch_start(self) -> None:
        self.predictions["val"].reset()

    def on_test_epoch_start(self) -> None:
        self.predictions["test"].reset()

    def gathered(self, stage: str) -> Predictions:
        """This epoch's predictions of ``stage`` from all ranks, one per image."""
        return self.predictions[stage].compute()

    def on_validation_epoch_end(self) -> None:
        """Log the val scalars (the only writer of ``val/*``) and keep the predictions for
        the record of the checkpoints saved after this validation."""
        predictions = self.gathered("val")  # collective: every rank takes part
        scores = epoch_metrics(predictions, self.hparams.threshold)
        # Computed on gathered predictions: identical on every rank, so no further sync.
        self.log_dict({f"val/{k}": v for k, v in scores.items()}, prog_bar=True)
        datamodule = getattr(self.trainer, "datamodule", None)
        if not self.trainer.sanity_checking and datamodule is not None:
            frame = predictions_frame(predictions, datamodule.table)
            self.latest_val = (self.trainer.global_step, self.trainer.current_epoch, frame)

    # ---- the record -----------------------------------------------------------------------
    @property
    def pretrained_on(self) -> tuple[str, ...]:
        """The corpora the starting weights were trained on (none when trained from scratch)."""
        if self.record is not None:
            return self.record.pretrained_on
        return self.weights_corpora if self.hparams.pretrained or self.hparams.weights_path else ()

    def make_record(self) -> ModelRecord:
        """What this model's checkpoints carry (see :class:`ModelRecord`)."""
        trainer = self.trainer
        datamodule = getattr(trainer, "datamodule", None)
        val, epoch, points = None, None, {}
        if self.latest_val is not None and self.latest_val[0] == trainer.global_step:
            _, epoch, val = self.latest_val
            points = choose_thresholds(val, self.settings)
            val = val.assign(path=[datamodule.relative(p) for p in val["path"]])
        wandb = next((lg for lg in trainer.loggers if isinstance(lg, WandbLogger)), None)
        tracking = {}
        if wandb is not None and wandb._experiment is not None:
            run = wandb.experiment
            tracking = {"project": run.project, "group": run.group, "name": run.name, "id": run.id}
        mlflow = next((lg for lg in trainer.loggers if isinstance(lg, MLFlowLogger)), None)
        if mlflow is not None:
            tracking |= {"mlflow_tracking_uri": mlflow.experiment.tracking_uri,
                         "mlflow_run_id": mlflow.run_id}  # fmt: skip
        return ModelRecord(
            backbone=self.hparams.backbone,
            target_layer=self.target_layer,
            preprocessing=getattr(datamodule, "preprocessing", self.preprocessing),
            threshold=float(self.hparams.threshold),
            pretrained_on=self.pretrained_on,
            weights_file=self.weights_file if self.record is None else self.record.weights_file,
            operating_points=points,
            val_predictions=val,
            val_epoch=epoch,
            data=datamodule.record() if hasattr(datamodule, "record") else None,
            training_precision=str(trainer.precision),
            tracking=tracking,
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = self.make_record().to_checkpoint()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if CHECKPOINT_KEY in checkpoint:
            self.record = ModelRecord.from_checkpoint(checkpoint[CHECKPOINT_KEY])

    def configure_optimizers(self) -> Any:
        parameters = [p for p in self.parameters() if p.requires_grad]
        make_optimizer = self.optimizer_factory or (lambda p: torch.optim.Adam(p, lr=1e-4))
        optimizer = make_optimizer(parameters)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": self.hparams.scheduler_monitor},
        }

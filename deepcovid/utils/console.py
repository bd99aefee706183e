"""Console output: the composed config as a tree, and known-harmless warnings silenced."""

from __future__ import annotations

import warnings

import rich
import rich.syntax
import rich.tree
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

# Warnings that are known to be harmless here and only drown the useful ones; each filter names
# its message and the module that raises it, so anything else still shows.
KNOWN_HARMLESS_WARNINGS = [
    (r".*isinstance\(treespec, LeafSpec\)", "lightning.pytorch.utilities._pytree"),
    # val metrics are computed from predictions already gathered from every rank, so they are
    # identical everywhere and need no sync_dist (CovidClassifier.on_validation_epoch_end).
    (
        r"It is recommended to use `self.log\('val/(auroc|average_precision|sensitivity"
        r"|specificity|accuracy)'",
        "lightning.pytorch.trainer.connectors.logger_connector.result",
    ),
]


def silence_known_warnings() -> None:
    """Filter the warnings listed in :data:`KNOWN_HARMLESS_WARNINGS`, nothing else."""
    for message, module in KNOWN_HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message, module=module)


@rank_zero_only
def print_config_tree(cfg: DictConfig, first: tuple[str, ...] = ("data", "model", "trainer")):
    """Print the resolved config as a rich tree, one branch per top-level group."""
    tree = rich.tree.Tree("config", style="bold")
    keys = [k for k in first if k in cfg] + [k for k in cfg if k not in first]
    for key in keys:
        value = cfg[key]
        text = (
            OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        )
        tree.add(str(key), style="bold cyan").add(rich.syntax.Syntax(text, "yaml"))
    rich.print(tree)

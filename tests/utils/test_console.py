"""Console output: known-harmless warnings silenced (those only), and the config tree."""

import warnings

from omegaconf import OmegaConf

from deepcovid.utils.console import print_config_tree, silence_known_warnings


def raised(message: str, module: str) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_known_warnings()
        warnings.warn_explicit(message, UserWarning, "x.py", 1, module=module)
    return [str(w.message) for w in caught]


def test_only_the_listed_warnings_from_their_modules_are_silenced() -> None:
    pytree = "lightning.pytorch.utilities._pytree"
    assert raised("`isinstance(treespec, LeafSpec)` is deprecated", pytree) == []
    assert raised("`isinstance(treespec, LeafSpec)` is deprecated", "elsewhere") != []
    assert raised("something else", pytree) == ["something else"]
    result = "lightning.pytorch.trainer.connectors.logger_connector.result"
    assert (
        raised("It is recommended to use `self.log('val/auroc', ..., sync_dist=True)`", result)
        == []
    )
    assert raised("It is recommended to use `self.log('val/loss', ...)`", result) != []


def test_the_config_tree_puts_data_model_trainer_first(capsys) -> None:
    cfg = OmegaConf.create(
        {"seed": 3, "trainer": {"epochs": 1}, "data": {"size": "${seed}"}, "model": {}}
    )
    print_config_tree(cfg)
    out = capsys.readouterr().out
    order = [out.index(key) for key in ("data", "model", "trainer", "seed")]
    assert order == sorted(order) and "size: 3" in out  # resolved

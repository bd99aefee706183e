"""The Hydra configs, installed as the package deepcovid.conf (see pyproject.toml).

Importing it (Hydra does, to read them) registers the schemas the yaml groups extend, so a
wrong value stops when the config is composed, naming the key and its choices.
"""

from hydra.core.config_store import ConfigStore

from deepcovid.data.settings import DataConfig
from deepcovid.evaluate import EvalConfig
from deepcovid.explain.explainers import GradCamConfig, OcclusionConfig
from deepcovid.export import ExportConfig
from deepcovid.metrics.summary import MetricsConfig
from deepcovid.models.classifier import ModelConfig
from deepcovid.predict import PredictConfig
from deepcovid.results.failures import FailuresConfig

ConfigStore.instance().store(group="data", name="schema", node=DataConfig)
ConfigStore.instance().store(group="metrics", name="schema", node=MetricsConfig)
ConfigStore.instance().store(group="model", name="schema", node=ModelConfig)
ConfigStore.instance().store(name="eval_schema", node=EvalConfig)
ConfigStore.instance().store(name="predict_schema", node=PredictConfig)
ConfigStore.instance().store(name="export_schema", node=ExportConfig)
ConfigStore.instance().store(group="explainer", name="occlusion_schema", node=OcclusionConfig)
ConfigStore.instance().store(group="explainer", name="gradcam_schema", node=GradCamConfig)
ConfigStore.instance().store(group="failures", name="schema", node=FailuresConfig)

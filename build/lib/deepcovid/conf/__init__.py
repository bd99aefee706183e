"""The Hydra configs, installed as the package deepcovid.conf (see pyproject.toml)."""

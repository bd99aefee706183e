"""deepcovid: Deep-COVID reproduced and extended with PyTorch Lightning and Hydra."""

__version__ = "0.1.0"

POSITIVE_CLASS = "covid"
NEGATIVE_CLASS = "non-covid"
CLASS_NAMES = (NEGATIVE_CLASS, POSITIVE_CLASS)  # index 1 = positive = COVID

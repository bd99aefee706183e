"""deepcovid: Deep-COVID reproduced and extended with PyTorch Lightning and Hydra."""

__version__ = "0.2.0"

# The two classes, indexed by label: 0 = non-COVID, 1 = COVID (the positive class).
POSITIVE_LABEL = 1
CLASS_NAMES = ("non-covid", "covid")  # in files and exports
CLASS_TITLES = ("non-COVID", "COVID")  # in figures and reports

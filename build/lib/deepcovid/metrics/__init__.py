"""Metrics on P(COVID) scores, built on torchmetrics."""

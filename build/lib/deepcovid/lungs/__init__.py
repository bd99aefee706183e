"""Lung masks for chest X-rays: a compact U-Net shipped with its weights, quality flags, and one
call that finds an image's mask (given, V7 Labs, or predicted); see MODEL_CARD.md."""

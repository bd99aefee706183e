"""Synthetic non-radiographs for the scope check's "other" class: noise, flat fields,
gradients, stripes, shapes and 1/f ("natural-looking") textures, drawn from a seeded generator."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

KINDS = ("uniform_noise", "smooth_noise", "flat", "gradient", "stripes", "shapes", "pink_noise")


def to_uint8(values: np.ndarray) -> np.ndarray:
    """Min-max scaled to 0-255 (a constant array stays at its clipped level)."""
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-6:
        return np.full(values.shape, np.clip(low, 0, 255), dtype=np.uint8)
    return ((values - low) / (high - low) * 255).astype(np.uint8)


def pink_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """Noise whose spectrum falls as 1/f**a (a in 1-2.5): the statistics of natural images."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    radius = np.sqrt(fx**2 + fy**2)
    radius[0, 0] = 1.0
    spectrum = rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size))
    return np.fft.ifft2(spectrum / radius ** rng.uniform(1.0, 2.5)).real


def synthetic_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """One ``size × size`` uint8 image of a random :data:`KINDS` kind."""
    kind = KINDS[rng.integers(len(KINDS))]
    y, x = np.mgrid[0:size, 0:size] / size
    if kind == "uniform_noise":
        values = rng.uniform(0, 255, (size, size))
    elif kind == "smooth_noise":
        values = gaussian_filter(rng.normal(size=(size, size)), rng.uniform(1, size / 6))
    elif kind == "flat":
        return np.full((size, size), rng.integers(0, 256), dtype=np.uint8)
    elif kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        values = np.cos(angle) * x + np.sin(angle) * y
        if rng.random() < 0.5:
            values = np.hypot(x - rng.random(), y - rng.random())
    elif kind == "stripes":
        angle, period = rng.uniform(0, np.pi), rng.uniform(0.03, 0.3)
        values = np.sin(2 * np.pi * (np.cos(angle) * x + np.sin(angle) * y) / period)
        if rng.random() < 0.5:
            values = np.sign(values * np.sin(2 * np.pi * x / period))
    elif kind == "shapes":
        values = np.full((size, size), rng.uniform(0, 1))
        for _ in range(rng.integers(1, 12)):
            cy, cx, ry, rx = rng.uniform(0, 1, 2).tolist() + rng.uniform(0.03, 0.4, 2).tolist()
            inside = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1
            if rng.random() < 0.5:
                inside = (abs(y - cy) <= ry) & (abs(x - cx) <= rx)
            values[inside] = rng.uniform(0, 1)
    else:
        values = pink_noise(rng, size)
    return to_uint8(values + rng.normal(0, rng.uniform(0, 0.1) * values.std() + 1e-9, values.shape))

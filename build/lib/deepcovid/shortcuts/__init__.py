"""Does the model look at the lungs? The shortcut audit: lung masks, heatmaps scored against
them, lung ablation, source tests, and the findings in plain words."""

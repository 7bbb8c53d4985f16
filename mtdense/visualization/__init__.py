"""Visualisation helpers for multi-task dense maps."""
from .colorize import (PARTS_PALETTE, colorize_depth, colorize_labels, colorize_normals,
                       colorize_parts, colorize_saliency, colorize_task, default_palette,
                       make_panel, render_sample, to_numpy_map)
from .visualizer import MultiTaskVisualizer, write_rgb_png

__all__ = [
    'PARTS_PALETTE', 'default_palette', 'to_numpy_map', 'colorize_labels', 'colorize_parts',
    'colorize_saliency', 'colorize_normals', 'colorize_depth', 'colorize_task', 'make_panel',
    'render_sample', 'MultiTaskVisualizer', 'write_rgb_png'
]

"""Render multi-task ground truth / predictions as RGB uint8 images.

Inputs follow the pipeline conventions of :mod:`mtdense.tasks`: numpy label
maps (H, W), normals (H, W, 3), depth (H, W); packed tensors / ``PixelData``
in (C, H, W) layout are accepted too (see :func:`to_numpy_map`). Invalid pixels
(label 255, zero normals, zero depth) are drawn in ``ignore_color`` (black by
default); palettes and colormaps are chosen so that no valid value is black.
"""
from __future__ import annotations

import math
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

import cv2
import matplotlib
import numpy as np

from mtdense.tasks import HUMAN_PARTS_CLASSES, IGNORE_INDEX, get_task

Color = Tuple[int, int, int]

# bg, head, torso, upper arm, lower arm, upper leg, lower leg (RGB). The background
# is dark grey, not black, so it stays distinguishable from ignored pixels.
PARTS_PALETTE = np.array([[64, 64, 64], [230, 25, 75], [60, 180, 75], [0, 130, 200],
                          [255, 225, 25], [145, 30, 180], [70, 240, 240]], dtype=np.uint8)
assert len(PARTS_PALETTE) == len(HUMAN_PARTS_CLASSES)


def default_palette(num_classes: int) -> np.ndarray:
    """A deterministic ``(num_classes, 3)`` uint8 RGB palette without black.

    The PASCAL VOC bit-interleaving palette, starting at its second entry so
    that class 0 is not black (black marks ignored pixels).
    """
    palette = np.zeros((num_classes, 3), dtype=np.uint8)
    for c in range(num_classes):
        idx, rgb = c + 1, [0, 0, 0]
        for shift in range(8):
            for ch in range(3):
                rgb[ch] |= ((idx >> ch) & 1) << (7 - shift)
            idx >>= 3
        palette[c] = rgb
    return palette


def to_numpy_map(data) -> np.ndarray:
    """Convert a task map to the pipeline layout ((H, W) or (H, W, 3) numpy).

    Numpy arrays must already be (H, W) or (H, W, 3); torch tensors and
    ``PixelData`` are taken to be in the packed (C, H, W) layout with C in {1, 3}.
    """
    if hasattr(data, 'data') and not isinstance(data, np.ndarray):  # PixelData
        data = data.data
    if hasattr(data, 'detach'):  # torch.Tensor: packed (C, H, W)
        arr = data.detach().cpu().numpy()
        if arr.ndim == 3 and arr.shape[0] == 1:
            return arr[0]
        if arr.ndim == 3 and arr.shape[0] == 3:
            return arr.transpose(1, 2, 0)
        if arr.ndim == 2:
            return arr
        raise ValueError(f'expected a (1|3, H, W) or (H, W) tensor, got shape {tuple(arr.shape)}')
    arr = np.asarray(data)  # numpy arrays are taken to be in the pipeline layout
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3):
        return arr
    raise ValueError(f'expected an (H, W) or (H, W, 3) array (tensors: (1|3, H, W)), got shape '
                     f'{arr.shape}')


def _apply_cmap(values: np.ndarray, cmap: str) -> np.ndarray:
    """Map values in [0, 1] to RGB uint8 with a matplotlib colormap."""
    return matplotlib.colormaps[cmap](values, bytes=True)[..., :3]


def colorize_labels(label, palette: Optional[Union[Sequence, np.ndarray]] = None,
                    ignore_index: int = IGNORE_INDEX, ignore_color: Color = (0, 0, 0)
                    ) -> np.ndarray:
    """Colour a label map with ``palette`` (default: :func:`default_palette`)."""
    label = to_numpy_map(label)
    if label.ndim != 2 or not np.issubdtype(label.dtype, np.integer):
        raise ValueError(f'expected an (H, W) integer label map, got {label.dtype} {label.shape}')
    ignored = label == ignore_index
    valid_labels = label[~ignored]
    top = int(valid_labels.max()) if valid_labels.size else -1
    if valid_labels.size and valid_labels.min() < 0:
        raise ValueError(f'label map has negative label {int(valid_labels.min())}')
    palette = (default_palette(max(top + 1, 1)) if palette is None
               else np.asarray(palette, dtype=np.uint8).reshape(-1, 3))
    if top >= len(palette):
        raise ValueError(f'label {top} has no colour: the palette has {len(palette)} entries')
    out = np.empty(label.shape + (3,), dtype=np.uint8)
    out[~ignored] = palette[valid_labels]
    out[ignored] = ignore_color
    return out


def colorize_parts(parts, ignore_index: int = IGNORE_INDEX,
                   ignore_color: Color = (0, 0, 0)) -> np.ndarray:
    """Colour a human-parts map (0 bg .. 6 lower leg) with :data:`PARTS_PALETTE`."""
    return colorize_labels(parts, PARTS_PALETTE, ignore_index, ignore_color)


def colorize_saliency(sal, cmap: str = 'viridis', ignore_index: int = IGNORE_INDEX,
                      ignore_color: Color = (0, 0, 0)) -> np.ndarray:
    """Heatmap of a saliency map.

    Integer maps are binary ground truth ({0, 1}, ``ignore_index`` ignored); float
    maps are probabilities in [0, 1]. ``viridis`` is used because its low end is
    not black.
    """
    sal = to_numpy_map(sal)
    if sal.ndim != 2:
        raise ValueError(f'expected an (H, W) saliency map, got shape {sal.shape}')
    if np.issubdtype(sal.dtype, np.integer) or sal.dtype == bool:
        ignored = sal == ignore_index if sal.dtype != bool else np.zeros(sal.shape, bool)
        bad = ~ignored & (sal != 0) & (sal != 1)
        if bad.any():
            raise ValueError('binary saliency must be 0, 1 or the ignore index '
                             f'{ignore_index}; found {np.unique(sal[bad])[:5].tolist()}')
        values = np.where(ignored, 0, sal).astype(np.float32)
    else:
        if not np.isfinite(sal).all() or sal.min() < 0 or sal.max() > 1:
            raise ValueError('saliency probabilities must be finite and in [0, 1], got range '
                             f'[{np.nanmin(sal)}, {np.nanmax(sal)}]')
        ignored = np.zeros(sal.shape, dtype=bool)
        values = sal.astype(np.float32)
    out = _apply_cmap(values, cmap)
    out[ignored] = ignore_color
    return out


def colorize_normals(normals, ignore_color: Color = (0, 0, 0)) -> np.ndarray:
    """RGB = (n + 1) / 2 of the camera-frame unit normals; zero vectors -> ``ignore_color``."""
    normals = to_numpy_map(normals)
    if normals.ndim != 3 or normals.shape[2] != 3:
        raise ValueError(f'expected an (H, W, 3) normals map, got shape {normals.shape}')
    normals = normals.astype(np.float32)
    invalid = ~np.any(normals != 0, axis=-1)
    out = np.clip(np.round((normals + 1) * 127.5), 0, 255).astype(np.uint8)
    out[invalid] = ignore_color
    return out


def colorize_depth(depth, cmap: str = 'plasma', vmin: Optional[float] = None,
                   vmax: Optional[float] = None, ignore_color: Color = (0, 0, 0)
                   ) -> np.ndarray:
    """Colour depth (metres) over the valid (> 0) pixels; near = dark end of ``cmap``.

    ``vmin``/``vmax`` default to the valid range of this map; pass fixed values to
    compare several maps on one scale.
    """
    depth = to_numpy_map(depth)
    if depth.ndim != 2:
        raise ValueError(f'expected an (H, W) depth map, got shape {depth.shape}')
    depth = depth.astype(np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    out = np.empty(depth.shape + (3,), dtype=np.uint8)
    out[...] = ignore_color
    if valid.any():
        lo = float(depth[valid].min()) if vmin is None else float(vmin)
        hi = float(depth[valid].max()) if vmax is None else float(vmax)
        scaled = np.clip((depth[valid] - lo) / max(hi - lo, 1e-6), 0, 1)
        out[valid] = _apply_cmap(scaled, cmap)
    return out


#: colour functions by name (a task definition's ``colorizer``) and the parts palette
COLORIZERS = dict(labels=colorize_labels, saliency=colorize_saliency, normals=colorize_normals,
                  depth=colorize_depth, parts_palette=PARTS_PALETTE)


def colorize_task(task: str, data, palette: Optional[Union[Sequence, np.ndarray]] = None,
                  **options) -> np.ndarray:
    """Colour ``data`` the way the definition of ``task`` says (:mod:`mtdense.tasks`).

    ``palette`` is used by class tasks (human parts default to :data:`PARTS_PALETTE`);
    ``options`` (``saliency_cmap``, ``depth_cmap``, ``range``, ...) go to the task.
    """
    return get_task(task).colorize(data, COLORIZERS, dict(options, palette=palette))


def _label_tile(tile: np.ndarray, text: str, font_scale: float) -> None:
    """Write ``text`` at the top-left of ``tile`` on a black box (in place)."""
    font, thickness = cv2.FONT_HERSHEY_SIMPLEX, 1
    (tw, th), base = cv2.getTextSize(text, font, font_scale, thickness)
    cv2.rectangle(tile, (0, 0), (min(tw + 4, tile.shape[1] - 1), th + base + 4), (0, 0, 0), -1)
    cv2.putText(tile, text, (2, th + 2), font, font_scale, (255, 255, 255), thickness,
                cv2.LINE_AA)


def make_panel(img: Optional[np.ndarray], maps: Mapping[str, np.ndarray],
               titles: Optional[Union[Mapping[str, str], Sequence[str]]] = None,
               ncols: Optional[int] = None, tile_hw: Optional[Tuple[int, int]] = None,
               font_scale: float = 0.4, gap: int = 2, img_title: str = 'image') -> np.ndarray:
    """Tile ``img`` and the already-coloured ``maps`` into one labelled RGB image.

    Args:
        img: RGB uint8 (H, W, 3) shown first with the title ``img_title``; may be None.
        maps: name -> RGB uint8 (h, w, 3) tile (e.g. from :func:`colorize_task`).
        titles: per-map labels (dict by name, or a sequence in ``maps`` order);
            defaults to the map names.
        ncols: tiles per row (default: all in one row up to 4 tiles, else 3).
        tile_hw: size of every tile (default: the image's size, else the first
            map's). Maps are resized with nearest neighbour, the image bilinearly.
        font_scale: OpenCV font scale of the labels.
        gap: white pixels between tiles.
        img_title: label of the image tile.
    """
    tiles, names = [], []
    if img is not None:
        tiles.append(img)
        names.append(img_title)
    for i, (name, tile) in enumerate(maps.items()):
        if isinstance(titles, Mapping):
            names.append(str(titles.get(name, name)))
        elif titles is not None:
            if len(titles) != len(maps):
                raise ValueError(f'{len(titles)} titles given for {len(maps)} maps')
            names.append(str(titles[i]))
        else:
            names.append(str(name))
        tiles.append(tile)
    if not tiles:
        raise ValueError('make_panel needs an image or at least one map')
    for name, tile in zip(names, tiles):
        if not (isinstance(tile, np.ndarray) and tile.dtype == np.uint8 and tile.ndim == 3
                and tile.shape[2] == 3):
            raise ValueError(f'panel tile {name!r} must be an RGB uint8 (H, W, 3) array, got '
                             f'{getattr(tile, "dtype", type(tile))} {getattr(tile, "shape", "")}')
    th, tw = tile_hw if tile_hw is not None else tiles[0].shape[:2]
    ncols = ncols or (len(tiles) if len(tiles) <= 4 else 3)
    nrows = math.ceil(len(tiles) / ncols)
    panel = np.full((nrows * th + (nrows - 1) * gap, ncols * tw + (ncols - 1) * gap, 3), 255,
                    dtype=np.uint8)
    for i, (name, tile) in enumerate(zip(names, tiles)):
        if tile.shape[:2] != (th, tw):
            interp = cv2.INTER_LINEAR if (img is not None and i == 0) else cv2.INTER_NEAREST_EXACT
            tile = cv2.resize(tile, (tw, th), interpolation=interp)
        tile = np.ascontiguousarray(tile).copy()
        _label_tile(tile, name, font_scale)
        r, c = divmod(i, ncols)
        y, x = r * (th + gap), c * (tw + gap)
        panel[y:y + th, x:x + tw] = tile
    return panel


def render_sample(img: Optional[np.ndarray], gts: Mapping[str, object],
                  palettes: Optional[Mapping[str, Union[Sequence, np.ndarray]]] = None,
                  **panel_kwargs) -> np.ndarray:
    """Colour every task map in ``gts`` (task -> map) and tile them next to ``img``."""
    palettes = palettes or {}
    maps: Dict[str, np.ndarray] = {
        task: colorize_task(task, data, palettes.get(task)) for task, data in gts.items()}
    return make_panel(img, maps, **panel_kwargs)


__all__ = ['PARTS_PALETTE', 'default_palette', 'to_numpy_map', 'colorize_labels',
           'colorize_parts', 'colorize_saliency', 'colorize_normals', 'colorize_depth',
           'colorize_task', 'make_panel', 'render_sample', 'COLORIZERS']

"""Class-dependent procedural materials and Lambertian shading.

A material maps surface points in the primitive's *local* frame to an RGB albedo in
[0, 1], so patterns stay attached to objects whatever the camera. Each class draws its
pattern kind and colours from its own ranges (:func:`sample_material`), which is what
lets a network read labels off appearance.
"""
from __future__ import annotations

import colorsys
import math
from typing import Optional, Sequence, Tuple

import numpy as np

Range = Tuple[float, float]


def hsv(rng: np.random.Generator, hue: Range, sat: Range, val: Range) -> np.ndarray:
    """RGB colour from uniform HSV ranges (hue in degrees, may wrap past 360)."""
    h = (rng.uniform(*hue) % 360.0) / 360.0
    return np.array(colorsys.hsv_to_rgb(h, rng.uniform(*sat), rng.uniform(*val)))


class Material:
    """Procedural albedo: a two-colour pattern modulated by smooth noise.

    Args:
        kind: ``plain``, ``stripes`` (bands across local ``axis``), ``checker`` (tiles in
            local ``axes``), ``sectors`` (``n`` wedges around the local y axis) or
            ``grain`` (wavy bands across ``axis``, wood-like).
        colors: two RGB colours in [0, 1].
        period: pattern period in metres (stripes, checker, grain).
        noise_freq: (3, 3) spatial frequencies (rad/m) of the noise sinusoids.
        noise_phase: (3,) phases of the noise sinusoids.
        noise_amp: relative albedo modulation by the noise.
    """

    KINDS = ('plain', 'stripes', 'checker', 'sectors', 'grain')

    def __init__(self, kind: str, colors: Sequence[np.ndarray], period: float = 0.2,
                 axis: int = 0, axes: Tuple[int, int] = (0, 1), sectors: int = 6,
                 noise_freq: Optional[np.ndarray] = None,
                 noise_phase: Optional[np.ndarray] = None, noise_amp: float = 0.1) -> None:
        if kind not in self.KINDS:
            raise ValueError(f'Material: unknown kind {kind!r}; expected one of {self.KINDS}')
        if period <= 0:
            raise ValueError(f'Material: period must be > 0, got {period}')
        self.kind = kind
        self.colors = np.asarray(colors, dtype=np.float64).reshape(2, 3)
        self.period = float(period)
        self.axis = int(axis)
        self.axes = tuple(axes)
        self.sectors = int(sectors)
        self.noise_freq = np.zeros((3, 3)) if noise_freq is None else np.asarray(noise_freq)
        self.noise_phase = np.zeros(3) if noise_phase is None else np.asarray(noise_phase)
        self.noise_amp = float(noise_amp)

    def pattern(self, q: np.ndarray) -> np.ndarray:
        """Blend weight in [0, 1] of the second colour at local points ``q`` (m, 3)."""
        if self.kind == 'plain':
            return np.zeros(len(q))
        if self.kind == 'stripes':
            return np.floor(q[:, self.axis] / self.period) % 2
        if self.kind == 'checker':
            i, j = self.axes
            return (np.floor(q[:, i] / self.period) + np.floor(q[:, j] / self.period)) % 2
        if self.kind == 'sectors':
            angle = np.arctan2(q[:, 2], q[:, 0]) + math.pi
            return np.floor(angle / (2 * math.pi) * self.sectors) % 2
        # grain: bands bent by a slow wobble along another axis
        other = q[:, (self.axis + 1) % 3] + 0.5 * q[:, (self.axis + 2) % 3]
        phase = 2 * math.pi * (q[:, self.axis] + 0.05 * np.sin(7.0 * other)) / self.period
        return 0.5 + 0.5 * np.sin(phase)

    def albedo(self, q: np.ndarray) -> np.ndarray:
        """RGB albedo (m, 3) in [0, 1] at local points ``q`` (m, 3)."""
        w = self.pattern(q).astype(np.float32)[:, None]
        c0, c1 = self.colors.astype(np.float32)
        rgb = c0 + w * (c1 - c0)
        noise = np.sin((q @ self.noise_freq.T + self.noise_phase).astype(np.float32)).sum(axis=1)
        rgb *= (1.0 + (self.noise_amp / 3.0) * noise)[:, None]
        return np.clip(rgb, 0.0, 1.0, out=rgb)


def _noise(rng: np.random.Generator, freq: Range, amp: Range) -> dict:
    dirs = rng.normal(size=(3, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    return dict(noise_freq=dirs * rng.uniform(*freq, size=(3, 1)),
                noise_phase=rng.uniform(0, 2 * math.pi, size=3), noise_amp=rng.uniform(*amp))


def _pair(rng: np.random.Generator, hue: Range, sat: Range, val: Range,
          contrast: Range = (0.55, 0.8)) -> Tuple[np.ndarray, np.ndarray]:
    """A colour and a darker shade of it (two-tone patterns of one class)."""
    c0 = hsv(rng, hue, sat, val)
    return c0, c0 * rng.uniform(*contrast)


def sample_material(name: str, rng: np.random.Generator) -> Material:
    """Random material of semantic class ``name`` or person part ``person:<part>``.

    Local frames: room quads have their plane in local xy (x horizontal on walls);
    solids have local y along their vertical / long axis.
    """
    if name == 'wall':  # vertical wallpaper stripes, pale blue-grey
        return Material('stripes', _pair(rng, (190, 235), (0.1, 0.35), (0.7, 0.92), (0.8, 0.92)),
                        period=rng.uniform(0.12, 0.35), axis=0, **_noise(rng, (2, 6), (0.03, 0.08)))
    if name == 'floor':  # tiles, warm brown / terracotta
        return Material('checker', _pair(rng, (15, 45), (0.3, 0.65), (0.4, 0.75), (0.5, 0.75)),
                        period=rng.uniform(0.3, 0.7), axes=(0, 1),
                        **_noise(rng, (3, 10), (0.05, 0.12)))
    if name == 'ceiling':  # near-white plaster
        return Material('plain', _pair(rng, (0, 360), (0.0, 0.08), (0.82, 0.95)),
                        **_noise(rng, (4, 12), (0.03, 0.08)))
    if name == 'table':  # wood grain along the table's length
        return Material('grain', _pair(rng, (15, 35), (0.45, 0.75), (0.3, 0.55), (0.6, 0.8)),
                        period=rng.uniform(0.03, 0.08), axis=0,
                        **_noise(rng, (5, 15), (0.05, 0.12)))
    if name == 'box':  # cardboard / crate planks, saturated orange-yellow
        return Material('stripes', _pair(rng, (28, 52), (0.55, 0.9), (0.65, 0.92), (0.7, 0.85)),
                        period=rng.uniform(0.06, 0.15), axis=1,
                        **_noise(rng, (5, 15), (0.05, 0.12)))
    if name == 'ball':  # beach ball: bright colour wedges alternating with white
        c0 = hsv(rng, (-20, 20), (0.75, 1.0), (0.75, 0.95))
        c1 = hsv(rng, (0, 360), (0.0, 0.15), (0.85, 1.0))
        return Material('sectors', (c0, c1), sectors=int(rng.integers(2, 5)) * 2,
                        **_noise(rng, (3, 8), (0.02, 0.06)))
    if name == 'cylinder':  # horizontal rings, violet
        return Material('stripes', _pair(rng, (255, 300), (0.35, 0.7), (0.45, 0.8)),
                        period=rng.uniform(0.08, 0.25), axis=1,
                        **_noise(rng, (3, 8), (0.03, 0.08)))
    if name in ('person:head', 'person:lower_arm', 'person:skin'):
        return Material('plain', _pair(rng, (15, 35), (0.25, 0.6), (0.35, 0.9)),
                        **_noise(rng, (10, 30), (0.03, 0.08)))
    if name == 'person:shirt':  # any hue: clothing varies; thin horizontal stripes
        return Material('stripes', _pair(rng, (0, 360), (0.3, 0.9), (0.3, 0.9), (0.7, 0.9)),
                        period=rng.uniform(0.02, 0.06), axis=1,
                        **_noise(rng, (10, 30), (0.05, 0.1)))
    if name == 'person:trousers':  # denim blue to charcoal
        return Material('plain', _pair(rng, (200, 240), (0.0, 0.7), (0.15, 0.5)),
                        **_noise(rng, (20, 40), (0.08, 0.15)))
    raise KeyError(f'sample_material: no material for {name!r}')


def shade(albedo: np.ndarray, normals: np.ndarray, view_dirs: np.ndarray,
          light_dir: np.ndarray, ambient: float, fill: float = 0.15) -> np.ndarray:
    """Lambertian shading: ``albedo * (ambient + diffuse * max(0, n.l) + fill * n.v)``.

    ``view_dirs`` are unit vectors from the surface towards the camera; the small
    camera-side fill light keeps surfaces turned away from the main light readable, so
    every normal direction changes the shade.
    """
    diffuse = max(0.0, 1.0 - ambient - fill)
    n_dot_l = np.maximum(normals @ light_dir, 0.0)
    n_dot_v = np.maximum(np.einsum('ij,ij->i', normals, view_dirs), 0.0)
    return albedo * (ambient + diffuse * n_dot_l + fill * n_dot_v).astype(np.float32)[:, None]

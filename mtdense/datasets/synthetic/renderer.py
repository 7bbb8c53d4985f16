"""Ray caster producing an image and exact ground truth for all five tasks."""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from mtdense.tasks import IGNORE_INDEX
from .camera import PinholeCamera
from .classes import CLASS_ID, CLASSES, SALIENT_CLASSES
from .primitives import INF, Primitive
from .scene import Scene, SceneConfig, sample_scene
from .textures import shade


class SyntheticRenderer:
    """Casts one ray per pixel centre of ``camera`` and shades the nearest hits.

    Ground truth of a pixel is read off the nearest primitive, so all maps agree
    exactly: ``depth`` = ray parameter (z = -1 rays), ``normals`` = the primitive's
    surface normal (flipped, if ever needed, to face the camera), ``semseg`` = its class,
    ``human_parts`` = its part id, ``saliency`` = 1 for :data:`SALIENT_CLASSES`.
    Pixels whose ray hits nothing are invalid: depth 0, normal 0, semseg 255,
    saliency 0 (nothing there stands out), human_parts 0 (or 255 with no person).
    """

    def __init__(self, camera: PinholeCamera) -> None:
        self.camera = camera
        self.rays = camera.ray_grid()
        self.rays_flat = self.rays.reshape(-1, 3)
        self.view_dirs = -self.rays_flat / np.linalg.norm(self.rays_flat, axis=1, keepdims=True)
        salient = np.zeros(len(CLASSES) + 1, dtype=np.uint8)
        salient[[CLASS_ID[c] for c in SALIENT_CLASSES]] = 1
        self._salient = salient  # last entry: hit nothing

    def cast(self, primitives: List[Primitive]) -> Tuple[np.ndarray, np.ndarray]:
        """Nearest hit per pixel: ray parameter (H, W) (inf = none) and index of the
        primitive hit (H, W) int32 (-1 = none)."""
        cam = self.camera
        t_buf = np.full((cam.height, cam.width), INF)
        id_buf = np.full((cam.height, cam.width), -1, dtype=np.int32)
        for k, prim in enumerate(primitives):
            lo_hi = prim.bounds()
            # Only the pixels inside the projected bounds can see the primitive.
            region = (0, cam.height, 0, cam.width) if lo_hi is None else cam.project_box(*lo_hi)
            if region is None:
                continue
            v0, v1, u0, u1 = region
            t = prim.intersect(self.rays[v0:v1, u0:u1])
            t_view, id_view = t_buf[v0:v1, u0:u1], id_buf[v0:v1, u0:u1]
            closer = t < t_view
            np.copyto(t_view, t, where=closer)
            id_view[closer] = k
        return t_buf, id_buf

    def render(self, scene: Scene, rng: Optional[np.random.Generator] = None,
               noise_std: float = 0.0) -> Dict[str, np.ndarray]:
        """Render ``scene``; ``rng`` draws the image noise (std in grey levels)."""
        cam = self.camera
        if scene.camera != cam:
            raise ValueError(f'SyntheticRenderer.render: scene camera {scene.camera} differs '
                             f'from the renderer camera {cam}')
        prims = scene.primitives
        t_buf, id_buf = self.cast(prims)
        ids = id_buf.ravel()
        t = t_buf.ravel()
        num_px = ids.size
        valid = ids >= 0

        labels = np.array([p.label for p in prims] + [IGNORE_INDEX], dtype=np.uint8)
        parts = np.array([p.part for p in prims] + [0], dtype=np.uint8)
        semseg = labels[ids]  # index -1 -> the trailing "hit nothing" entry
        human_parts = parts[ids]
        saliency = self._salient[np.where(valid, semseg, len(CLASSES))]

        normals = np.zeros((num_px, 3), dtype=np.float32)
        rgb = np.empty((num_px, 3), dtype=np.float32)
        rgb[:] = scene.background
        # Group pixels by primitive once (a stable sort), then evaluate each primitive's
        # normals, material and shading on its own pixels only (no full-image masks).
        order = np.argsort(ids, kind='stable')
        bounds = np.concatenate([[0], np.cumsum(np.bincount(ids + 1, minlength=len(prims) + 1))])
        for k, prim in enumerate(prims):
            pix = order[bounds[k + 1]:bounds[k + 2]]
            if pix.size == 0:
                continue
            p = self.rays_flat[pix] * t[pix, None]
            n = prim.normal(p)
            # Closed primitives seen from outside and the inward room already face the
            # camera; this guards grazing hits where rounding could tip the sign.
            n[np.einsum('ij,ij->i', n, p) > 0] *= -1
            normals[pix] = n
            rgb[pix] = shade(prim.material.albedo(prim.to_local(p)), n, self.view_dirs[pix],
                             scene.light_dir, scene.ambient)
        # Display encoding with gamma 2 (a square root: close to sRGB and cheap).
        img = np.sqrt(np.clip(rgb, 0.0, 1.0, out=rgb), out=rgb)
        img *= 255.0
        if noise_std > 0:
            if rng is None:
                raise ValueError('SyntheticRenderer.render: noise_std > 0 needs an rng')
            img += np.float32(noise_std) * rng.standard_normal(size=img.shape, dtype=np.float32)
        img = np.clip(np.rint(img, out=img), 0, 255, out=img).astype(np.uint8)

        h, w = cam.height, cam.width
        has_person = bool((semseg == CLASS_ID['person']).any())
        return dict(
            img=img.reshape(h, w, 3),
            semseg=semseg.reshape(h, w),
            human_parts=(human_parts if has_person else
                         np.full(num_px, IGNORE_INDEX, dtype=np.uint8)).reshape(h, w),
            saliency=saliency.reshape(h, w),
            normals=normals.reshape(h, w, 3),
            depth=np.where(valid, t, 0.0).astype(np.float32).reshape(h, w),
        )


class SyntheticSceneGenerator:
    """Deterministic random scenes: sample ``i`` depends only on ``(seed, i)``.

    Args:
        height, width: image size in pixels (each at least :attr:`MIN_SIZE`).
        seed: non-negative integer; image ``i`` uses
            ``np.random.default_rng([seed, i])``, so any subset, order or number of
            worker processes gives the same images.
        scene_cfg: :class:`SceneConfig` or a dict of its fields.
    """

    MIN_SIZE = 16

    def __init__(self, height: int, width: int, seed: int = 0,
                 scene_cfg: Union[SceneConfig, Dict, None] = None) -> None:
        for name, v in (('height', height), ('width', width)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < self.MIN_SIZE:
                raise ValueError(f'SyntheticSceneGenerator: {name} must be an integer >= '
                                 f'{self.MIN_SIZE}, got {v!r}')
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f'SyntheticSceneGenerator: seed must be a non-negative integer, '
                             f'got {seed!r}')
        self.cfg = scene_cfg if isinstance(scene_cfg, SceneConfig) else \
            SceneConfig.from_dict(scene_cfg)
        self.seed = int(seed)
        self.camera = PinholeCamera(int(height), int(width), self.cfg.hfov_deg)
        self.renderer = SyntheticRenderer(self.camera)

    def rng(self, index: int) -> np.random.Generator:
        if index < 0:
            raise ValueError(f'SyntheticSceneGenerator: index must be >= 0, got {index}')
        return np.random.default_rng([self.seed, int(index)])

    def scene(self, index: int, rng: Optional[np.random.Generator] = None) -> Scene:
        """The random scene of sample ``index``."""
        return sample_scene(self.rng(index) if rng is None else rng, self.camera, self.cfg)

    def __call__(self, index: int) -> Dict[str, object]:
        """Image and ground truth of sample ``index`` (plus ``info`` about the scene)."""
        rng = self.rng(index)
        scene = self.scene(index, rng)
        out: Dict[str, object] = self.renderer.render(scene, rng, self.cfg.image_noise_std)
        out['info'] = dict(scene.info, index=int(index))
        return out

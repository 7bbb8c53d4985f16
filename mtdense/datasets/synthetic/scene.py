"""Random scene layout: a room, free-standing objects and people, a camera and a light.

World frame: y up, floor at y = 0, the room spans x in [-W/2, W/2], z in [-D, 0],
y in [0, H]; the camera stands near the front wall (z = 0) looking into the room.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Dict, List, Optional, Tuple

import numpy as np

from .camera import CameraPose, PinholeCamera, rot_x, rot_y
from .classes import CLASS_ID
from .people import PoseRanges, make_person, person_footprint
from .primitives import Box, Cylinder, Primitive, Quad, Sphere
from .textures import sample_material

Range = Tuple[float, float]
OBJECT_KINDS = ('table', 'box', 'ball', 'cylinder')


@dataclass(frozen=True)
class SceneConfig:
    """Sampling ranges of the scene generator (lengths in metres, angles in degrees)."""
    hfov_deg: float = 60.0
    room_width: Range = (4.0, 8.0)
    room_depth: Range = (5.0, 9.0)
    room_height: Range = (2.5, 3.2)
    ceiling_prob: float = 0.5  # without a ceiling, rays over the walls hit nothing
    cam_height: Range = (1.0, 1.8)
    cam_pitch_deg: Range = (5.0, 25.0)
    cam_yaw_deg: Range = (-25.0, 25.0)
    num_objects: Tuple[int, int] = (2, 6)  # inclusive
    object_kinds: Tuple[str, ...] = OBJECT_KINDS
    num_people_probs: Tuple[float, ...] = (0.3, 0.45, 0.25)  # P(0 people), P(1), P(2)
    person_height: Range = (1.5, 1.9)
    placement_distance: Range = (1.6, 7.0)  # along the viewing direction
    stack_prob: float = 0.25  # a smaller box on top of a box, a ball on a table
    ambient: Range = (0.3, 0.45)
    image_noise_std: float = 2.0  # grey levels, image only
    pose: PoseRanges = field(default_factory=PoseRanges)

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ('object_kinds', 'num_people_probs', 'pose'):
                continue
            if isinstance(v, tuple) and (len(v) != 2 or v[0] > v[1]):
                raise ValueError(f'SceneConfig.{f.name}: expected a (low, high) pair with '
                                 f'low <= high, got {v}')
        bad = [k for k in self.object_kinds if k not in OBJECT_KINDS]
        if bad or not self.object_kinds:
            raise ValueError(f'SceneConfig.object_kinds: {list(self.object_kinds)} must be a '
                             f'non-empty subset of {OBJECT_KINDS}')
        p = np.asarray(self.num_people_probs, dtype=np.float64)
        if p.ndim != 1 or len(p) == 0 or (p < 0).any() or abs(p.sum() - 1.0) > 1e-6:
            raise ValueError(f'SceneConfig.num_people_probs: expected probabilities of '
                             f'0, 1, ... people summing to 1, got {self.num_people_probs}')
        if self.num_objects[0] < 0:
            raise ValueError(f'SceneConfig.num_objects: must be >= 0, got {self.num_objects}')
        if not 0.0 <= self.ceiling_prob <= 1.0 or not 0.0 <= self.stack_prob <= 1.0:
            raise ValueError('SceneConfig: ceiling_prob and stack_prob must be in [0, 1], got '
                             f'{self.ceiling_prob}, {self.stack_prob}')
        if self.image_noise_std < 0:
            raise ValueError(f'SceneConfig.image_noise_std: must be >= 0, '
                             f'got {self.image_noise_std}')

    @classmethod
    def from_dict(cls, cfg: Optional[Dict]) -> 'SceneConfig':
        """Build from a (config file) dict; unknown keys are an error."""
        cfg = dict(cfg or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise KeyError(f'SceneConfig: unknown keys {unknown}; expected some of {sorted(known)}')
        if isinstance(cfg.get('pose'), dict):
            pose_known = {f.name for f in fields(PoseRanges)}
            bad = sorted(set(cfg['pose']) - pose_known)
            if bad:
                raise KeyError(f'SceneConfig.pose: unknown keys {bad}; expected some of '
                               f'{sorted(pose_known)}')
            cfg['pose'] = PoseRanges(**{k: tuple(v) for k, v in cfg['pose'].items()})
        for k, v in list(cfg.items()):
            if isinstance(v, list):
                cfg[k] = tuple(v)
        return cls(**cfg)

    def to_dict(self) -> Dict:
        return asdict(self)


@dataclass
class Scene:
    """Everything the renderer needs; primitives are in the camera frame."""
    camera: PinholeCamera
    pose: CameraPose
    primitives: List[Primitive]
    light_dir: np.ndarray  # camera frame, unit, towards the light
    ambient: float
    background: np.ndarray  # RGB in [0, 1] of pixels that hit nothing
    info: Dict = field(default_factory=dict)

    @property
    def num_people(self) -> int:
        return int(self.info.get('num_people', 0))


def room_quads(width: float, depth: float, height: float, ceiling: bool,
               rng: np.random.Generator) -> List[Primitive]:
    """Inward-facing floor, walls and optional ceiling (world frame)."""
    ex, ey, ez = np.eye(3)
    wall_mat = sample_material('wall', rng)
    quads = [
        Quad((0, 0, -depth / 2), width / 2, depth / 2, np.stack([ex, -ez, ey], 1),
             label=CLASS_ID['floor'], material=sample_material('floor', rng)),
        Quad((0, height / 2, -depth), width / 2, height / 2, np.stack([ex, ey, ez], 1),
             label=CLASS_ID['wall'], material=wall_mat),
        Quad((0, height / 2, 0), width / 2, height / 2, np.stack([-ex, ey, -ez], 1),
             label=CLASS_ID['wall'], material=wall_mat),
        Quad((-width / 2, height / 2, -depth / 2), depth / 2, height / 2,
             np.stack([-ez, ey, ex], 1), label=CLASS_ID['wall'], material=wall_mat),
        Quad((width / 2, height / 2, -depth / 2), depth / 2, height / 2,
             np.stack([ez, ey, -ex], 1), label=CLASS_ID['wall'], material=wall_mat),
    ]
    if ceiling:
        quads.append(Quad((0, height, -depth / 2), width / 2, depth / 2,
                          np.stack([ex, ez, -ey], 1), label=CLASS_ID['ceiling'],
                          material=sample_material('ceiling', rng)))
    return quads


def make_object(kind: str, rng: np.random.Generator, x: float, z: float,
                stack: bool) -> Tuple[List[Primitive], float]:
    """World-frame primitives of one object standing on the floor at (x, z), and the
    radius of its floor footprint."""
    label = CLASS_ID[kind]
    yaw_rot = rot_y(rng.uniform(0, 2 * math.pi))
    mat = sample_material(kind, rng)
    if kind == 'table':
        hx, hz = rng.uniform(0.3, 0.7), rng.uniform(0.25, 0.5)
        top_h, thick, leg = rng.uniform(0.6, 0.8), 0.025, 0.025
        prims: List[Primitive] = [Box((0, top_h - thick, 0), (hx, thick, hz), label=label,
                                      material=mat)]
        for sx in (-1, 1):
            for sz in (-1, 1):
                prims.append(Box((sx * (hx - 0.06), (top_h - 2 * thick) / 2, sz * (hz - 0.06)),
                                 (leg, (top_h - 2 * thick) / 2, leg), label=label, material=mat))
        if stack:  # a ball lying on the table top
            r = rng.uniform(0.06, min(0.15, hz * 0.6))
            prims.append(Sphere((rng.uniform(-hx + r, hx - r), top_h + r, 0), r,
                                rot=rot_y(rng.uniform(0, 2 * math.pi)),
                                label=CLASS_ID['ball'], material=sample_material('ball', rng)))
        footprint = math.hypot(hx, hz)
    elif kind == 'box':
        half = rng.uniform(0.15, 0.5, size=3)
        prims = [Box((0, half[1], 0), half, label=label, material=mat)]
        if stack:  # a smaller, differently turned box on top
            h2 = half * rng.uniform(0.4, 0.8, size=3)
            prims.append(Box((0, 2 * half[1] + h2[1], 0), h2,
                             rot=rot_y(rng.uniform(0, math.pi / 2)), label=label,
                             material=sample_material('box', rng)))
        footprint = math.hypot(half[0], half[2])
    elif kind == 'ball':
        r = rng.uniform(0.1, 0.4)
        # a random tilt so the wedges do not always stand upright
        tilt = rot_y(rng.uniform(0, 2 * math.pi)) @ rot_x(rng.uniform(0, 1.2))
        prims = [Sphere((0, r, 0), r, rot=tilt, label=label, material=mat)]
        footprint = r
    elif kind == 'cylinder':
        r, hh = rng.uniform(0.1, 0.35), rng.uniform(0.2, 1.0)
        prims = [Cylinder((0, hh, 0), r, hh, label=label, material=mat)]
        footprint = r
    else:
        raise KeyError(f'make_object: unknown kind {kind!r}; expected one of {OBJECT_KINDS}')
    trans = np.array([x, 0.0, z])
    return [p.moved(yaw_rot, trans) for p in prims], footprint


def sample_scene(rng: np.random.Generator, camera: PinholeCamera,
                 cfg: SceneConfig = SceneConfig()) -> Scene:
    """Draw one random scene (all randomness from ``rng``)."""
    width, depth, height = (rng.uniform(*cfg.room_width), rng.uniform(*cfg.room_depth),
                            rng.uniform(*cfg.room_height))
    has_ceiling = bool(rng.random() < cfg.ceiling_prob)
    cam_h = min(rng.uniform(*cfg.cam_height), height - 0.2)
    cam_pos = (rng.uniform(-width / 4, width / 4), cam_h, -rng.uniform(0.2, 0.6))
    pose = CameraPose(cam_pos, yaw=math.radians(rng.uniform(*cfg.cam_yaw_deg)),
                      pitch=math.radians(rng.uniform(*cfg.cam_pitch_deg)))
    world: List[Primitive] = room_quads(width, depth, height, has_ceiling, rng)

    fwd = np.array([-math.sin(pose.yaw), -math.cos(pose.yaw)])  # viewing direction in xz
    right = np.array([math.cos(pose.yaw), -math.sin(pose.yaw)])
    tan_half = math.tan(math.radians(camera.hfov_deg) / 2)
    placed: List[Tuple[float, float, float]] = []  # (x, z, footprint radius)

    def place(radius: float) -> Optional[Tuple[float, float]]:
        """A free floor spot in view for a footprint of ``radius`` (None if none found)."""
        for _ in range(30):
            s = rng.uniform(*cfg.placement_distance)
            lateral = rng.uniform(-0.9, 0.9) * tan_half * s
            x, z = np.array(cam_pos)[[0, 2]] + s * fwd + lateral * right
            inside = (abs(x) <= width / 2 - radius - 0.05) and (-depth + radius + 0.05 <= z
                                                                 <= -radius - 0.05)
            clear = all(math.hypot(x - px, z - pz) > radius + pr + 0.05 for px, pz, pr in placed)
            if inside and clear:
                placed.append((float(x), float(z), radius))
                return float(x), float(z)
        return None

    num_people = int(rng.choice(len(cfg.num_people_probs), p=cfg.num_people_probs))
    people = 0
    for _ in range(num_people):
        ph = rng.uniform(*cfg.person_height)
        spot = place(person_footprint(ph))
        if spot is not None:
            world += make_person(rng, spot, rng.uniform(0, 2 * math.pi), ph, cfg.pose)
            people += 1

    objects: List[str] = []
    for _ in range(int(rng.integers(cfg.num_objects[0], cfg.num_objects[1] + 1))):
        kind = str(rng.choice(cfg.object_kinds))
        # Draw the object first so its footprint is known, then find it a spot.
        prims, radius = make_object(kind, rng, 0.0, 0.0, bool(rng.random() < cfg.stack_prob))
        spot = place(radius)
        if spot is not None:
            world += [p.moved(np.eye(3), np.array([spot[0], 0.0, spot[1]])) for p in prims]
            objects.append(kind)

    r_cw = pose.world_to_cam
    t_cw = -r_cw @ np.asarray(cam_pos)
    light_w = np.array([rng.uniform(-1, 1), rng.uniform(0.8, 2.0), rng.uniform(-1, 1)])
    light = r_cw @ (light_w / np.linalg.norm(light_w))
    return Scene(camera=camera, pose=pose, primitives=[p.moved(r_cw, t_cw) for p in world],
                 light_dir=light, ambient=float(rng.uniform(*cfg.ambient)),
                 background=np.array([0.08, 0.08, 0.1]) * rng.uniform(0.5, 1.5),
                 info=dict(room=[float(width), float(depth), float(height)],
                           ceiling=has_ceiling, num_people=people, objects=objects,
                           camera_pose=pose.to_dict()))


"""Typed training batches: what a model sees (:class:`Observation`) kept apart from what it is trained
against (:class:`Targets`).

The privilege split is structural: :class:`Observation` holds only what a camera-based driver has at run
time (images, calibration, ego state, route command, target point); every ground-truth quantity lives in
:class:`Targets`. A model's ``forward`` takes an ``Observation``; only the loss sees ``Targets``.

A single sample (``DrivingDataset[i]``) uses the same classes without the leading batch dimension ``B``;
:func:`riskdistill.data.torch_dataset.collate_batch` stacks samples into a :class:`Batch`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch

#: BEV occupancy channels of ``Targets.bev_occupancy`` (see ``targets.BevOccupancyTarget``).
BEV_CHANNELS: tuple[str, ...] = ("vehicle", "vulnerable", "static_obstacle", "drivable", "lane_marking")


def _map_tensors(obj: Any, fn) -> Any:
    """A copy of a tensor dataclass with ``fn`` applied to every tensor field (``None`` stays ``None``)."""
    changes = {}
    for f in fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, torch.Tensor):
            changes[f.name] = fn(v)
        elif hasattr(v, "__dataclass_fields__"):
            changes[f.name] = _map_tensors(v, fn)
    return replace(obj, **changes)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        both = isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
        return both and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, _TensorDataclass):
        return a.equals(b)
    return bool(a == b)


class _TensorDataclass:
    def to(self, device: torch.device | str, non_blocking: bool = False):
        """A copy with every tensor moved to ``device``."""
        return _map_tensors(self, lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self):
        """A copy with every tensor in pinned memory (called by ``DataLoader(pin_memory=True)``)."""
        return _map_tensors(self, lambda t: t.pin_memory())

    def clone(self):
        """A copy with every tensor cloned (memory of its own)."""
        return _map_tensors(self, lambda t: t.clone())

    def equals(self, other: Any) -> bool:
        """Whether ``other`` is the same type with every field equal: tensors of the same dtype and shape with
        every value equal, bit for bit (NaN never equals), nested tensor dataclasses alike, anything else by
        ``==``."""
        if type(other) is not type(self):
            return False
        return all(_equal(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))


@dataclass
class Observation(_TensorDataclass):
    """The model's inputs. Shapes for a batch (a single sample drops ``B``):

    - ``images``: ``[B, N_cam, 3, H, W]``, float32 in [0, 1], or uint8 in [0, 255] when the data set was
      built with ``image_dtype="uint8"`` (``images_uint8`` is then True; normalise on the device);
    - ``camera_valid``: ``[B, N_cam]`` bool, False for a camera dropped by augmentation (its image is zero);
    - ``K``: ``[B, N_cam, 3, 3]`` float32 intrinsics of the images as delivered (scaled when resized);
    - ``T_ego_from_cam``: ``[B, N_cam, 4, 4]`` float32, OpenCV camera frame -> ego frame;
    - ``ego_state``: ``[B, 4]`` float32: speed (m/s), longitudinal accel (m/s^2), yaw rate (rad/s),
      steer (last command, [-1, 1], positive = left);
    - ``command``: ``[B]`` int64, ``riskdistill.types.Command`` values (1..6);
    - ``target_point``: ``[B, 2]`` float32, route point ~20 m ahead in the ego frame (x fwd, y left);
    - ``prev_images``: ``[B, T_prev, N_cam, 3, H, W]`` (same dtype as ``images``), oldest first, or None;
    - ``prev_valid``: ``[B, T_prev]`` bool, False where the route had no earlier frame (padded with the
      oldest available one), or None.
    """

    images: torch.Tensor
    camera_valid: torch.Tensor
    K: torch.Tensor
    T_ego_from_cam: torch.Tensor
    ego_state: torch.Tensor
    command: torch.Tensor
    target_point: torch.Tensor
    prev_images: torch.Tensor | None = None
    prev_valid: torch.Tensor | None = None

    @property
    def images_uint8(self) -> bool:
        return self.images.dtype == torch.uint8

    def batched(self) -> Observation:
        """This single sample as a batch of one (a leading ``B = 1`` on every tensor)."""
        return _map_tensors(self, lambda t: t[None])


@dataclass
class Targets(_TensorDataclass):
    """Ground truth for the losses (never a model input). A field is None unless its target builder was
    requested. Shapes for a batch (a single sample drops ``B``):

    - ``future_waypoints``: ``[B, 6, 2]`` float32, rear-axle positions every 0.5 s in the ego frame;
    - ``future_yaw``: ``[B, 6]`` float32, headings relative to the ego;
    - ``future_valid``: ``[B, 6]`` bool, mask the waypoint loss with it (False past the route's end);
    - ``bev_occupancy``: ``[B, C, H_bev, W_bev]`` float32 in {0, 1}, channels :data:`BEV_CHANNELS`
      (vehicle, vulnerable = pedestrian/cyclist, static_obstacle, drivable, lane_marking), on the
      ``BevGrid`` layout (row 0 = front, col 0 = left);
    - ``risk_map``: ``[B, 1, H_bev, W_bev]`` float32, the teacher's risk labels (see
      ``targets.RiskMapTarget``);
    - ``plan_path``: ``[B, P, 2]`` float32, the expert's intended rear-axle path, a point every metre
      ahead (ego frame);
    - ``plan_speed_mps``: ``[B, 1]`` float32, the expert's target speed;
    - ``plan_valid``: ``[B, 1]`` bool, False where the data set holds no expert plan (then both are zeros);
    - ``image_semantics``: ``[B, N_cam, h, w]`` int64 per-camera classes (background, vehicle, vulnerable,
      static obstacle) at a fraction of the image size; ``image_depth_m``: ``[B, N_cam, h, w]`` float32,
      the nearest surface; ``image_valid``: ``[B, 1]`` bool (False: the data set has no image labels).
    """

    future_waypoints: torch.Tensor | None = None
    future_yaw: torch.Tensor | None = None
    future_valid: torch.Tensor | None = None
    bev_occupancy: torch.Tensor | None = None
    risk_map: torch.Tensor | None = None
    plan_path: torch.Tensor | None = None
    plan_speed_mps: torch.Tensor | None = None
    plan_valid: torch.Tensor | None = None
    image_semantics: torch.Tensor | None = None
    image_depth_m: torch.Tensor | None = None
    image_valid: torch.Tensor | None = None


@dataclass
class Batch(_TensorDataclass):
    """A collated batch: ``observation`` (model input), ``targets`` (loss only), the ``frame_ids`` of its B
    samples and the frame ids that ``on_error="skip"`` passed over to fill it (``skipped``)."""

    observation: Observation
    targets: Targets
    frame_ids: list[str]
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frame_ids)


@dataclass
class Sample:
    """One frame as returned by ``DrivingDataset.__getitem__`` (unbatched Observation and Targets)."""

    observation: Observation
    targets: Targets
    frame_id: str
    skipped: list[str] = field(default_factory=list)

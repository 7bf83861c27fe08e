"""The VLM risk teacher: grounded objects + camera images -> prompt -> backend -> :class:`FrameLabel`.

    teacher = VLMTeacher(VLMTeacherConfig(backend={"type": "local", "model_dir": "models/qwen2.5-vl-3b"}))
    labels = teacher.label_many(frames)        # FrameLabel, or ReplyError (kind, raw_text) per frame
    teacher.config_hash                         # cache key part: the runner stores labels per hash + frame id

Per frame: the grounder lists the objects (default: ground truth, ``teacher.grounding``); the ones visible
in the shown cameras (nearest first, at most ``max_objects``) go into the prompt with the images; the reply
is parsed and validated against those ids (``parse.py``); a failed reply is re-asked up to
``max_attempts`` times in total (sampled decoding uses ``seed + attempt``), then returned as the
:class:`ReplyError` of its last attempt. A frame without objects gets an empty label without a model call.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

import riskdistill
from riskdistill.config import StrictConfig
from riskdistill.data.storage import DataError, FrameRecord, check_image_file
from riskdistill.teacher.objects import GroundedObject
from riskdistill.teacher.schema import MAX_REASON_CHARS, FrameLabel, Provenance
from riskdistill.teacher.vlm.backends import (
    BackendConfig,
    DecodingConfig,
    ImageInput,
    VLMRequest,
    build_backend,
)
from riskdistill.teacher.vlm.backends.base import VLMBackend
from riskdistill.teacher.vlm.parse import (
    MAX_SUMMARY_CHARS,
    ParseConfig,
    ReplyError,
    build_label,
    cap_raw,
    parse_reply,
)
from riskdistill.teacher.vlm.prompt import (
    DEFAULT_TEMPLATE,
    PromptTemplate,
    load_template,
    object_line,
    reply_json_schema,
    select_objects,
)

Grounder = Callable[[FrameRecord], list[GroundedObject]]

# backend settings that change how, not what, is generated: left out of the config hash
_OPERATIONAL_KEYS = frozenset(
    {
        "base_url",
        "api_key_env",
        "timeout_s",
        "max_retries",
        "backoff_s",
        "backoff_max_s",
        "concurrency",
        "batch_size",
        "device",
        "grammar_cache_size",
        "gpu_memory_utilization",
        "tensor_parallel_size",
        "enforce_eager",
        "max_model_len",
        "max_images_per_prompt",
        "max_response_bytes",
        "max_consecutive_failures",
    }
)


class CameraConfigError(ValueError):
    """The configured cameras do not exist in the data set (a configuration error: labelling stops)."""


class VLMTeacherConfig(StrictConfig):
    """The VLM teacher. ``backend``: one of the backend configs, chosen by its ``type``
    (``local`` / ``openai`` / ``vllm``). ``cameras``: ``"front"`` (``front_camera`` only), ``"all"`` or a list
    of camera names."""

    backend: BackendConfig
    prompt: str = DEFAULT_TEMPLATE  # template id or path of a .jinja file
    cameras: Literal["front", "all"] | tuple[str, ...] = "front"
    front_camera: str = "CAM_FRONT"
    max_objects: int = Field(default=16, ge=1)
    include_unseen: bool = False  # also list objects no shown camera sees
    reason_max_chars: int = Field(default=120, ge=8, le=MAX_REASON_CHARS)
    summary_max_chars: int = Field(default=300, ge=8, le=MAX_SUMMARY_CHARS)
    decoding: DecodingConfig = DecodingConfig()
    parse: ParseConfig = ParseConfig()
    max_attempts: int = Field(default=2, ge=1)

    @field_validator("cameras", mode="before")
    @classmethod
    def _cameras_tuple(cls, v: Any) -> Any:
        return tuple(v) if isinstance(v, list) else v


@dataclass(frozen=True)
class PreparedFrame:
    """A frame ready for the backend: its request and the objects listed in the prompt (by id)."""

    frame_id: str
    request: VLMRequest
    objects: dict[int, GroundedObject]


_IMAGE_FORMATS = {".jpg": ("JPEG",), ".jpeg": ("JPEG",), ".png": ("PNG",), ".webp": ("WEBP",)}


def checked_image(frame: FrameRecord, camera: str) -> Path:
    """The path of a frame's camera image after decoding it completely: a :class:`DataError` naming the file
    when it lies outside the data set, is empty, truncated or corrupt, or its content does not match its
    suffix, so a broken image is never sent to a model (nor labelled)."""
    path = frame.image_file(camera)
    formats = _IMAGE_FORMATS.get(path.suffix.lower(), ("JPEG", "PNG", "WEBP"))
    problem = check_image_file(path, str(path), None, formats)
    if problem is not None:
        raise DataError(f"{problem} (camera {camera!r} of frame {frame.frame_id!r})")
    return path


def default_grounder(frame: FrameRecord) -> list[GroundedObject]:
    """Ground-truth grounding (``teacher.grounding.ground_truth_objects``)."""
    from riskdistill.teacher.grounding import ground_truth_objects

    return ground_truth_objects(frame)


class VLMTeacher:
    """Labels frames with a VLM (see the module docstring). The backend is built on first use."""

    def __init__(
        self,
        config: VLMTeacherConfig | dict[str, Any],
        grounder: Grounder | None = None,
        backend: VLMBackend | None = None,
    ):
        if isinstance(config, dict):
            config = VLMTeacherConfig.from_dict(config, source="VLM teacher config")
        self.config = config
        # replies are held to the limits the reply schema announces (not only the schema module's maximum)
        reason_max = min(config.parse.reason_max_chars, config.reason_max_chars)
        self._parse = config.parse.model_copy(update={"reason_max_chars": reason_max})
        self.template: PromptTemplate = load_template(config.prompt)
        self.grounder: Grounder = grounder or default_grounder
        self._backend = backend

    # ------------------------------------------------------------------------------------------ identity
    @property
    def backend(self) -> VLMBackend:
        if self._backend is None:
            self._backend = build_backend(self.config.backend, self.config.decoding)
        return self._backend

    @cached_property
    def config_hash(self) -> str:
        """sha256 prefix of everything that determines the labels: the config (without operational backend
        settings such as URLs, timeouts, concurrency, batch size, device), the prompt template's text hash
        and the model revision."""
        d = self.config.model_dump(mode="json")
        d["backend"] = {k: v for k, v in d["backend"].items() if k not in _OPERATIONAL_KEYS}
        d["prompt_hash"] = self.template.prompt_hash
        d["model_revision"] = self.backend.model_revision
        blob = json.dumps(d, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def shown_cameras(self, frame: FrameRecord) -> list[str]:
        """The cameras whose images go into the prompt, in the frame's camera order."""
        names = list(frame.camera_names)
        c = self.config
        if c.cameras == "all":
            return names
        if c.cameras == "front":
            if c.front_camera not in names:
                raise CameraConfigError(
                    f"frame {frame.frame_id}: front camera {c.front_camera!r} not among the cameras {names}; "
                    f"set VLMTeacherConfig.front_camera"
                )
            return [c.front_camera]
        missing = [n for n in c.cameras if n not in names]
        if missing:
            raise CameraConfigError(
                f"frame {frame.frame_id}: camera(s) {missing} not among the cameras {names}"
            )
        return [n for n in names if n in c.cameras]

    # ------------------------------------------------------------------------------------------ prompts
    def prepare(self, frame: FrameRecord, objects: Sequence[GroundedObject] | None = None) -> PreparedFrame:
        """Ground the frame (unless ``objects`` are given) and build its request."""
        c = self.config
        cams = self.shown_cameras(frame)
        grounded = self.grounder(frame) if objects is None else list(objects)
        listed = select_objects(grounded, cams, c.max_objects, c.include_unseen)
        schema = reply_json_schema([o.object_id for o in listed], c.reason_max_chars, c.summary_max_chars)
        shown = set(cams)
        system, user = self.template.render(
            cameras=cams,
            object_lines=[object_line(o, o.camera in shown) for o in listed],
            ego_speed_mps=float(frame.ego.speed_mps),
            command=frame.command.name.lower(),
            reason_max_chars=c.reason_max_chars,
            reply_schema=json.dumps(schema, separators=(",", ":")),
        )
        images = tuple(ImageInput(camera=n, path=checked_image(frame, n)) for n in cams)
        request = VLMRequest(
            request_id=frame.frame_id,
            system=system,
            user_text=user,
            images=images,
            json_schema=schema,
            seed=c.decoding.seed,
        )
        return PreparedFrame(frame.frame_id, request, {o.object_id: o for o in listed})

    def _provenance(self, raw: str | None, attempt: int, repairs: list[str], decoding: dict) -> Provenance:
        b = self.backend
        decoding = {**decoding, "attempt": attempt, "repairs": repairs}
        if raw is not None:
            raw, full = cap_raw(raw)
            if full is not None:  # the stored raw text is cut: say so, with the full length
                decoding["raw_response_chars"] = full
        return Provenance(
            teacher="vlm",
            model_id=b.model_id,
            model_revision=b.model_revision,
            prompt_template_id=self.template.template_id,
            prompt_hash=self.template.prompt_hash,
            decoding=decoding,
            seed=self.config.decoding.seed + max(attempt - 1, 0),
            raw_response=raw,
            package_version=riskdistill.__version__,
            config_hash=self.config_hash,
        )

    def finish(
        self, prepared: PreparedFrame, reply: str | ReplyError, attempt: int
    ) -> FrameLabel | ReplyError:
        """Parse one reply into a label, or the error (with the attempt count)."""
        if isinstance(reply, ReplyError):
            reply.attempts = attempt
            return reply
        try:
            parsed = parse_reply(
                reply, prepared.objects.keys(), self._parse, summary_max_chars=self.config.summary_max_chars
            )
            decoding = self._decoding_params()
            return build_label(
                prepared.frame_id,
                parsed,
                prepared.objects,
                self._provenance(reply, attempt, parsed.repairs, decoding),
            )
        except ReplyError as err:
            err.attempts = attempt
            return err
        except ValidationError as exc:  # a reply the schema check let through but the label rejects
            return ReplyError("schema", f"the label is invalid: {exc}", reply, attempts=attempt)
        except Exception as exc:  # one odd reply never fails the batch: it is this frame's error
            msg = f"the reply could not be read ({type(exc).__name__}: {exc})"
            raw = reply if isinstance(reply, str) else repr(reply)
            return ReplyError("syntax", msg, raw, attempts=attempt)

    def _decoding_params(self) -> dict[str, Any]:
        return self.backend.decoding_params()

    # ------------------------------------------------------------------------------------------ labelling
    def label_many(self, frames: Sequence[FrameRecord]) -> list[FrameLabel | ReplyError]:
        """Label frames in one backend batch per attempt; each slot is a label or the frame's error."""
        results: list[FrameLabel | ReplyError | None] = [None] * len(frames)
        pending: list[tuple[int, PreparedFrame]] = []
        for i, frame in enumerate(frames):
            try:
                prepared = self.prepare(frame)
            except CameraConfigError:
                raise
            except DataError as exc:  # the frame's own data (image, annotation): never sent anywhere
                results[i] = ReplyError("input", f"cannot build the prompt: {exc}", "")
                continue
            except Exception as exc:  # any other failure while preparing: this frame's error
                results[i] = ReplyError(
                    "backend", f"cannot build the prompt: {type(exc).__name__}: {exc}", ""
                )
                continue
            if not prepared.objects:
                results[i] = FrameLabel(
                    frame_id=frame.frame_id,
                    objects=[],
                    frame_risk=0.0,
                    summary="no objects visible in the shown cameras",
                    provenance=self._provenance(None, 0, [], {"skipped": "no objects"}),
                )
                continue
            pending.append((i, prepared))
        d = self.config.decoding
        for attempt in range(1, self.config.max_attempts + 1):
            if not pending:
                break
            requests = [p.request for _, p in pending]
            if attempt > 1:  # a re-ask: new seed (changes sampled replies)
                requests = [
                    VLMRequest(
                        r.request_id, r.system, r.user_text, r.images, r.json_schema, d.seed + attempt - 1
                    )
                    for r in requests
                ]
            replies = self.backend.generate(requests)
            if len(replies) != len(requests):
                raise RuntimeError(
                    f"backend {self.backend.name!r} gave {len(replies)} replies to {len(requests)} requests"
                )
            still: list[tuple[int, PreparedFrame]] = []
            for (i, prepared), reply in zip(pending, replies, strict=True):
                out = self.finish(prepared, reply, attempt)
                results[i] = out
                if isinstance(out, ReplyError):
                    still.append((i, prepared))
            pending = still
        return [r for r in results if r is not None]

    def label(self, frame: FrameRecord) -> FrameLabel:
        """One frame's label; raises :class:`ReplyError` when every attempt failed."""
        out = self.label_many([frame])[0]
        if isinstance(out, ReplyError):
            raise out
        return out

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()

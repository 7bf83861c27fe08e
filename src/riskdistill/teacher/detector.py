"""Open-vocabulary 2D detection for grounding (the paper uses OV-DINO; here OWLv2 through transformers).

    det = OpenVocabDetector(DetectorConfig(model_dir="models/owlv2-base-patch16-ensemble"))
    detections = det.detect(frame)                  # list[grounding.Detection], every camera
    objects = det.ground(frame)                     # matched to the 3D objects: list[GroundedObject]

The model is read from a local folder only (``local_files_only=True``: no hub at run time): any
``Owlv2ForObjectDetection`` checkpoint saved with its ``Owlv2Processor`` (``save_pretrained``). Text
queries are ``query_template.format(class name)`` for each class. Boxes come back in each camera's pixel
coordinates (the processor pads images to a square; ``post_process_grounded_object_detection`` with the
original ``(H, W)`` undoes that), are clipped to the image and kept above ``score_threshold``, at most
``max_per_camera`` per camera, highest score first.

:func:`build_tiny_owlv2` writes a tiny, randomly initialised OWLv2 (about 0.1M parameters, a word-level
tokenizer over the query words) for tests and pipeline checks. Its detections are random: it exercises
the mechanics (shapes, thresholds, matching), never the quality.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from riskdistill.config import StrictConfig
from riskdistill.data.storage import FrameRecord
from riskdistill.teacher.grounding import Detection, match_detections
from riskdistill.teacher.objects import GroundedObject
from riskdistill.types import ActorClass

DEFAULT_CLASSES = (
    "car",
    "van",
    "truck",
    "bus",
    "pedestrian",
    "cyclist",
    "traffic cone",
    "barrier",
    "open car door",
    "emergency vehicle",
)
assert len(DEFAULT_CLASSES) == len(ActorClass)


class DetectorConfig(StrictConfig):
    model_dir: str
    classes: list[str] = Field(default_factory=lambda: list(DEFAULT_CLASSES))
    query_template: str = "a photo of a {}"
    score_threshold: float = Field(default=0.1, ge=0.0, le=1.0)
    max_per_camera: int = Field(default=50, ge=1)
    cameras: list[str] | None = None  # None: every camera of the frame
    device: str = "cpu"
    # matching to the 3D objects (grounding.match_detections)
    iou_min: float = Field(default=0.1, ge=0.0, le=1.0)
    max_center_px: float | None = None
    match_method: str = "hungarian"


class OpenVocabDetector:
    """An OWLv2 detector loaded from ``config.model_dir`` (local files only)."""

    def __init__(self, config: DetectorConfig):
        import torch
        from transformers import Owlv2ForObjectDetection, Owlv2Processor

        self.config = config
        path = Path(config.model_dir)
        if not path.is_dir():
            raise FileNotFoundError(f"detector model folder {path} does not exist (no hub downloads)")
        self.processor = Owlv2Processor.from_pretrained(path, local_files_only=True)
        self.model = Owlv2ForObjectDetection.from_pretrained(path, local_files_only=True)
        self.model.eval().to(config.device)
        self._torch = torch
        self.queries = [config.query_template.format(c) for c in config.classes]

    def detect_images(
        self, images: np.ndarray | Sequence[np.ndarray], camera_names: Sequence[str]
    ) -> list[Detection]:
        """Detections in images ``[N, H, W, 3]`` uint8 (one per camera name)."""
        torch = self._torch
        imgs = [np.array(im, dtype=np.uint8) for im in images]  # writable copies for torch
        if len(imgs) != len(camera_names):
            raise ValueError(f"{len(imgs)} images for {len(camera_names)} camera names")
        if not imgs:
            return []
        inputs = self.processor(text=[self.queries] * len(imgs), images=imgs, return_tensors="pt")
        inputs = {k: v.to(self.config.device) for k, v in inputs.items()}
        with torch.inference_mode():
            outputs = self.model(**inputs)
        sizes = [im.shape[:2] for im in imgs]
        results = self.processor.post_process_grounded_object_detection(
            outputs, threshold=self.config.score_threshold, target_sizes=sizes
        )
        out: list[Detection] = []
        for cam, (h, w), res in zip(camera_names, sizes, results, strict=True):
            scores = res["scores"].float().cpu().numpy()
            labels = res["labels"].cpu().numpy()
            boxes = res["boxes"].float().cpu().numpy().reshape(-1, 4)
            boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0.0, w)
            boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0.0, h)
            order = np.argsort(-scores, kind="stable")[: self.config.max_per_camera]
            for k in order.tolist():
                x0, y0, x1, y1 = (float(v) for v in boxes[k])
                if x1 <= x0 or y1 <= y0:
                    continue
                out.append(
                    Detection(cam, (x0, y0, x1, y1), self.config.classes[int(labels[k])], float(scores[k]))
                )
        return out

    def detect(self, frame: FrameRecord) -> list[Detection]:
        """Detections in the frame's cameras (``config.cameras`` or all)."""
        names = list(frame.camera_names)
        use = self.config.cameras or names
        unknown = sorted(set(use) - set(names))
        if unknown:
            raise ValueError(
                f"detector cameras {unknown} are not in frame {frame.frame_id!r} (cameras {names})"
            )
        return self.detect_images([frame.image(c) for c in use], use)

    def ground(self, frame: FrameRecord) -> list[GroundedObject]:
        """Detect, then match to the frame's 3D objects (:func:`grounding.match_detections`)."""
        c = self.config
        return match_detections(self.detect(frame), frame, c.iou_min, c.max_center_px, c.match_method)

    def __call__(self, frame: FrameRecord) -> list[GroundedObject]:
        return self.ground(frame)


# ------------------------------------------------------------------------------------------ tiny model
def _tiny_tokenizer(words: Sequence[str], max_length: int) -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<unk>": 1}
    for w in sorted(set(words)):
        vocab.setdefault(w, len(vocab))
    # OWLv2 pools the text at argmax(input_ids): the end token must have the largest id
    vocab["<bos>"] = len(vocab)
    vocab["<eos>"] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", vocab["<bos>"]), ("<eos>", vocab["<eos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=max_length,
    )


def build_tiny_owlv2(
    out_dir: str | Path,
    classes: Sequence[str] = DEFAULT_CLASSES,
    query_template: str = "a photo of a {}",
    image_size: int = 64,
    patch_size: int = 16,
    seed: int = 0,
) -> Path:
    """Save a tiny random ``Owlv2ForObjectDetection`` + ``Owlv2Processor`` into ``out_dir`` (loads with
    ``local_files_only=True``) and return the folder."""
    import torch
    from transformers import (
        Owlv2Config,
        Owlv2ForObjectDetection,
        Owlv2ImageProcessor,
        Owlv2Processor,
    )

    max_len = 16
    words = [w for c in classes for w in query_template.format(c).split()]
    tokenizer = _tiny_tokenizer(words, max_len)
    vocab_size = len(tokenizer.get_vocab())
    config = Owlv2Config(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": max_len,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": patch_size,
        },
        projection_dim=32,
    )
    torch.manual_seed(seed)
    model = Owlv2ForObjectDetection(config).eval()
    with torch.no_grad():  # small box offsets: boxes start near the patch grid (box_bias), as after training
        model.box_head.dense2.weight.mul_(1e-2)
        model.box_head.dense2.bias.zero_()
    image_processor = Owlv2ImageProcessor(size={"height": image_size, "width": image_size})
    processor = Owlv2Processor(image_processor=image_processor, tokenizer=tokenizer)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out

"""Open-vocabulary 2D detection for grounding: OWLv2 or Grounding DINO through transformers (the paper's
OV-DINO is of the Grounding DINO family).

    det = build_detector(DetectorConfig(model_dir="models/grounding-dino-tiny"))  # or an OWLv2 folder
    detections = det.detect(frame)                  # list[grounding.Detection], every camera
    objects = det.ground(frame)                     # matched to the 3D objects: list[GroundedObject]

The model is read from a local folder only (``local_files_only=True``: no hub at run time), saved with
``save_pretrained`` together with its processor; ``DetectorConfig.kind`` ``"auto"`` reads the folder's
``config.json`` (``model_type`` ``owlv2`` or ``grounding-dino``).

- **OWLv2** (:class:`OpenVocabDetector`): text queries ``query_template.format(class name)`` per class;
  boxes in each camera's pixel coordinates (the processor pads images to a square;
  ``post_process_grounded_object_detection`` with the original ``(H, W)`` undoes that).
- **Grounding DINO** (:class:`GroundingDinoDetector`): one caption of the class names, ``"car. van. ..."``
  (lower case, as the model was trained); a box's class is the class whose caption tokens it matches
  best (the maximum sigmoid of the box's token logits over each class's tokens, located by the
  tokenizer's character offsets), its score that maximum; boxes (centre, size, relative) are scaled to
  each camera's ``(H, W)``.

Either way boxes are clipped to the image and kept above ``score_threshold``, at most ``max_per_camera``
per camera, highest score first.

:func:`build_tiny_owlv2` and :func:`build_tiny_grounding_dino` write tiny, randomly initialised models
(about 0.1-0.2M parameters, word-level tokenizers over the query words) for tests and pipeline checks.
Their detections are random: they exercise the mechanics (shapes, thresholds, matching), never the
quality.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

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
    kind: Literal["auto", "owlv2", "grounding_dino"] = "auto"  # auto: config.json's model_type
    classes: list[str] = Field(default_factory=lambda: list(DEFAULT_CLASSES))
    query_template: str = "a photo of a {}"  # OWLv2's text queries (Grounding DINO uses the class names)
    score_threshold: float = Field(default=0.1, ge=0.0, le=1.0)
    max_per_camera: int = Field(default=50, ge=1)
    cameras: list[str] | None = None  # None: every camera of the frame
    device: str = "cpu"
    # matching to the 3D objects (grounding.match_detections)
    iou_min: float = Field(default=0.1, ge=0.0, le=1.0)
    max_center_px: float | None = None
    match_method: str = "hungarian"


def detector_kind(config: DetectorConfig) -> str:
    """``"owlv2"`` or ``"grounding_dino"``: the configured kind, or the model folder's ``model_type``."""
    if config.kind != "auto":
        return config.kind
    path = Path(config.model_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"detector model folder {config.model_dir}: no config.json (no hub downloads)"
        )
    model_type = str(json.loads(path.read_text()).get("model_type", ""))
    kinds = {"owlv2": "owlv2", "grounding-dino": "grounding_dino"}
    if model_type not in kinds:
        raise ValueError(f"{path}: model_type {model_type!r} is not a supported detector {sorted(kinds)}")
    return kinds[model_type]


def build_detector(config: DetectorConfig) -> OpenVocabDetector | GroundingDinoDetector:
    """The detector of ``config`` (OWLv2 or Grounding DINO, see :func:`detector_kind`)."""
    if detector_kind(config) == "grounding_dino":
        return GroundingDinoDetector(config)
    return OpenVocabDetector(config)


class _Detector:
    """What both detectors share: per-frame detection over the configured cameras, box filtering, and
    grounding (detect, then match to the 3D objects)."""

    config: DetectorConfig

    def detect_images(
        self, images: np.ndarray | Sequence[np.ndarray], camera_names: Sequence[str]
    ) -> list[Detection]:
        raise NotImplementedError

    def _load(self, config: DetectorConfig, processor_cls: Any, model_cls: Any) -> None:
        """Processor and model from ``config.model_dir`` (local files only), on ``config.device``."""
        import torch

        self.config = config
        path = Path(config.model_dir)
        if not path.is_dir():
            raise FileNotFoundError(f"detector model folder {path} does not exist (no hub downloads)")
        self.processor = processor_cls.from_pretrained(path, local_files_only=True)
        self.model = model_cls.from_pretrained(path, local_files_only=True)
        self.model.eval().to(config.device)
        self._torch = torch

    def _forward(
        self, images: np.ndarray | Sequence[np.ndarray], camera_names: Sequence[str], text: Any
    ) -> tuple[list[np.ndarray], Any]:
        """Writable uint8 copies of ``images`` and the model's outputs for them with ``text`` per image
        (None for no images)."""
        imgs = [np.array(im, dtype=np.uint8) for im in images]  # writable copies for torch
        if len(imgs) != len(camera_names):
            raise ValueError(f"{len(imgs)} images for {len(camera_names)} camera names")
        if not imgs:
            return imgs, None
        inputs = self.processor(text=[text] * len(imgs), images=imgs, return_tensors="pt")
        inputs = {k: v.to(self.config.device) for k, v in inputs.items()}
        with self._torch.inference_mode():
            return imgs, self.model(**inputs)

    def _keep(
        self, cam: str, h: int, w: int, scores: np.ndarray, labels: np.ndarray, boxes: np.ndarray
    ) -> list[Detection]:
        """Detections of one camera: boxes clipped to the image, non-empty, highest score first, capped."""
        boxes = boxes.reshape(-1, 4).copy()
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0.0, w)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0.0, h)
        out = []
        for k in np.argsort(-scores, kind="stable")[: self.config.max_per_camera].tolist():
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


class OpenVocabDetector(_Detector):
    """An OWLv2 detector loaded from ``config.model_dir`` (local files only)."""

    def __init__(self, config: DetectorConfig):
        from transformers import Owlv2ForObjectDetection, Owlv2Processor

        self._load(config, Owlv2Processor, Owlv2ForObjectDetection)
        self.queries = [config.query_template.format(c) for c in config.classes]

    def detect_images(
        self, images: np.ndarray | Sequence[np.ndarray], camera_names: Sequence[str]
    ) -> list[Detection]:
        """Detections in images ``[N, H, W, 3]`` uint8 (one per camera name)."""
        imgs, outputs = self._forward(images, camera_names, self.queries)
        if not imgs:
            return []
        sizes = [im.shape[:2] for im in imgs]
        results = self.processor.post_process_grounded_object_detection(
            outputs, threshold=self.config.score_threshold, target_sizes=sizes
        )
        out: list[Detection] = []
        for cam, (h, w), res in zip(camera_names, sizes, results, strict=True):
            scores = res["scores"].float().cpu().numpy()
            labels = res["labels"].cpu().numpy()
            out += self._keep(cam, h, w, scores, labels, res["boxes"].float().cpu().numpy())
        return out


def caption_and_class_tokens(classes: Sequence[str], tokenizer: Any) -> tuple[str, list[list[int]]]:
    """The Grounding DINO caption of ``classes`` (``"car. van. traffic cone."``) and, per class, the indices
    of its tokens in the tokenized caption (by the tokenizer's character offsets)."""
    names = [c.strip().lower() for c in classes]
    caption = ". ".join(names) + "."
    spans, pos = [], 0
    for name in names:
        start = caption.index(name, pos)
        spans.append((start, start + len(name)))
        pos = start + len(name)
    offsets = tokenizer(caption, return_offsets_mapping=True)["offset_mapping"]
    tokens = [[i for i, (a, b) in enumerate(offsets) if b > a and a >= lo and b <= hi] for lo, hi in spans]
    missing = [classes[k] for k, t in enumerate(tokens) if not t]
    if missing:
        raise ValueError(f"the Grounding DINO tokenizer gives no token for class(es) {missing}")
    return caption, tokens


class GroundingDinoDetector(_Detector):
    """A Grounding DINO detector loaded from ``config.model_dir`` (local files only)."""

    def __init__(self, config: DetectorConfig):
        from transformers import GroundingDinoForObjectDetection, GroundingDinoProcessor

        self._load(config, GroundingDinoProcessor, GroundingDinoForObjectDetection)
        self.caption, self.class_tokens = caption_and_class_tokens(config.classes, self.processor.tokenizer)

    def detect_images(
        self, images: np.ndarray | Sequence[np.ndarray], camera_names: Sequence[str]
    ) -> list[Detection]:
        """Detections in images ``[N, H, W, 3]`` uint8 (one per camera name)."""
        torch = self._torch
        imgs, outputs = self._forward(images, camera_names, self.caption)
        if not imgs:
            return []
        probs = outputs.logits.float().sigmoid()  # [N, Q, max_text_len]
        per_class = torch.stack([probs[..., idx].amax(-1) for idx in self.class_tokens], dim=-1)  # [N, Q, C]
        scores, labels = per_class.max(-1)
        cxcywh = outputs.pred_boxes.float()  # relative to each (unpadded) image
        corners = torch.cat(
            [cxcywh[..., :2] - 0.5 * cxcywh[..., 2:], cxcywh[..., :2] + 0.5 * cxcywh[..., 2:]], -1
        )
        out: list[Detection] = []
        for n, cam in enumerate(camera_names):
            h, w = imgs[n].shape[:2]
            keep = (scores[n] > self.config.score_threshold).cpu().numpy()
            boxes = (corners[n] * corners.new_tensor([w, h, w, h])).cpu().numpy()[keep]
            out += self._keep(cam, h, w, scores[n].cpu().numpy()[keep], labels[n].cpu().numpy()[keep], boxes)
        return out


# ------------------------------------------------------------------------------------------ tiny model
def build_tiny_grounding_dino(
    out_dir: str | Path,
    classes: Sequence[str] = DEFAULT_CLASSES,
    image_size: int = 64,
    seed: int = 0,
) -> Path:
    """Save a tiny random ``GroundingDinoForObjectDetection`` (a 4-stage Swin backbone of width 8, one
    encoder and two decoder layers of width 32, 16 queries, a one-layer BERT) + ``GroundingDinoProcessor``
    into ``out_dir`` (loads with ``local_files_only=True``) and return the folder. Its word-level tokenizer
    gives ``[CLS]``, ``[SEP]``, ``.`` and ``?`` BERT's ids (101, 102, 1012, 1029): the model splits the
    caption into phrases at exactly those ids."""
    import torch
    from transformers import (
        BertConfig,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    words = sorted({w for c in classes for w in c.strip().lower().split()})
    vocab = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, ".": 1012, "?": 1029}
    for k, w in enumerate(words):
        vocab[w] = 200 + k
    if 200 + len(words) > 1012:
        raise ValueError(f"too many class words ({len(words)}) for the tiny Grounding DINO vocabulary")
    max_len = 64
    tokenizer = _word_level_tokenizer(vocab, ("[CLS]", "[SEP]"), "[PAD]", "[UNK]", max_len, bert_names=True)
    config = GroundingDinoConfig(
        backbone_config=SwinConfig(
            image_size=image_size,
            patch_size=4,
            embed_dim=8,
            depths=[1, 1, 1, 1],
            num_heads=[1, 1, 1, 1],
            window_size=2,
            out_indices=[2, 3, 4],
        ),
        text_config=BertConfig(
            vocab_size=1030,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=max_len,
            pad_token_id=0,
        ),
        num_queries=16,
        encoder_layers=1,
        decoder_layers=2,  # the box heads of two decoder layers are tied: at least two
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        d_model=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_n_points=2,
        decoder_n_points=2,
        max_text_len=max_len,
    )
    torch.manual_seed(seed)
    model = GroundingDinoForObjectDetection(config).eval()
    image_processor = GroundingDinoImageProcessor(
        size={"shortest_edge": image_size, "longest_edge": 2 * image_size}
    )
    processor = GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def _tiny_tokenizer(words: Sequence[str], max_length: int) -> Any:

    vocab = {"<pad>": 0, "<unk>": 1}
    for w in sorted(set(words)):
        vocab.setdefault(w, len(vocab))
    # OWLv2 pools the text at argmax(input_ids): the end token must have the largest id
    vocab["<bos>"] = len(vocab)
    vocab["<eos>"] = len(vocab)
    return _word_level_tokenizer(vocab, ("<bos>", "<eos>"), "<pad>", "<unk>", max_length, bert_names=False)


def _word_level_tokenizer(
    vocab: dict[str, int], ends: tuple[str, str], pad: str, unk: str, max_length: int, bert_names: bool
) -> Any:
    """A whitespace word-level fast tokenizer over ``vocab`` that wraps every text in ``ends`` (named
    cls/sep for BERT-style models, bos/eos otherwise)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    first, last = ends
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{first} $A {last}", special_tokens=[(first, vocab[first]), (last, vocab[last])]
    )
    names = ("cls_token", "sep_token") if bert_names else ("bos_token", "eos_token")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, **dict(zip(names, ends, strict=True)), pad_token=pad, unk_token=unk,
        model_max_length=max_length,
    )  # fmt: skip


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

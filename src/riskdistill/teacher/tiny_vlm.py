"""A tiny, randomly initialised Qwen2.5-VL model folder, built from configs without any download.

No real VLM weights can be fetched offline, so the VLM teacher's code paths (local backend with constrained
decoding, ``transformers serve`` + OpenAI client) are exercised with this model: about 0.3M parameters, a
byte-level BPE tokenizer trained here on a few lines of text (Qwen's special tokens first), the project's own
Qwen2-VL-style chat template, and the real Qwen2.5-VL processor and model classes. Its free-form output is
random; with grammar-constrained decoding it still emits schema-valid JSON.

    from riskdistill.teacher.tiny_vlm import build_tiny_vlm
    model_dir = build_tiny_vlm("/tmp/tiny_vlm", seed=0)  # a save_pretrained folder

Loading: ``AutoProcessor.from_pretrained(model_dir, local_files_only=True)`` and
``AutoModelForImageTextToText.from_pretrained(model_dir, local_files_only=True)``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from riskdistill.io import atomic_write_text

# Qwen's special tokens, in Qwen's order, first in the vocabulary.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# The project's Qwen2-VL-style chat template (transformers does not ship one for a model folder built here):
# each image item -> <|vision_start|><|image_pad|><|vision_end|>; turns <|im_start|>role\n...<|im_end|>\n;
# generation prompt <|im_start|>assistant\n.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif item['type'] == 'video' -%}{{ '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

# Training text of the tokenizer: the kind of text the teacher reads and writes.
_CORPUS = [
    "You are a driving risk assessor. Rank the objects by risk and give a score in [0, 1].",
    '{"objects": [{"id": 12, "risk": 0.85, "reason": "pedestrian crossing the ego path"}], "summary": "ok"}',
    "car truck bus van motorcycle bicycle pedestrian cyclist barrier cone static obstacle",
    "CAM_FRONT CAM_FRONT_LEFT CAM_FRONT_RIGHT CAM_BACK CAM_BACK_LEFT CAM_BACK_RIGHT",
    "distance 12.5 m, closing speed 3.2 m/s, box [10, 20, 40, 60], camera front, ahead, left, right",
    "The ego vehicle drives forward; a parked van may hide someone; a cyclist approaches from the left.",
    "0 1 2 3 4 5 6 7 8 9 0.0 0.1 0.25 0.5 0.75 0.9 1.0 true false null",
]


def build_tiny_tokenizer(vocab_size: int = 384):
    """A byte-level BPE ``PreTrainedTokenizerFast`` with Qwen's special tokens (ids 0..7)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
        model_max_length=32768,
    )


def build_tiny_vlm(
    out_dir: str | Path,
    *,
    seed: int = 0,
    max_image_side_px: int = 224,
    hidden_size: int = 64,
    overwrite: bool = False,
) -> Path:
    """Write a tiny random Qwen2.5-VL model folder (``config.json``, weights, processor, tokenizer, chat
    template) to ``out_dir`` and return it. Images are resized to at most ``max_image_side_px ** 2`` pixels.
    The folder is written completely into a temporary sibling and then renamed, so an interrupted build never
    leaves a half model; an existing folder is kept unless ``overwrite``."""
    import torch
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    out = Path(out_dir)
    if (out / "config.json").is_file() and not overwrite:
        return out
    tokenizer = build_tiny_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    size = {"shortest_edge": 56 * 56, "longest_edge": max_image_side_px * max_image_side_px}
    image_processor = Qwen2VLImageProcessor(size=size, patch_size=14, temporal_patch_size=2, merge_size=2)
    video_processor = Qwen2VLVideoProcessor(size=size, patch_size=14, temporal_patch_size=2, merge_size=2)
    processor = Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )
    n_heads = 4
    head_dim = hidden_size // n_heads
    half = head_dim // 2
    mrope = [half - 2 * (half // 3), half // 3, half // 3]  # sums to head_dim / 2
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": hidden_size,
            "intermediate_size": 2 * hidden_size,
            "num_hidden_layers": 2,
            "num_attention_heads": n_heads,
            "num_key_value_heads": 2,
            "max_position_embeddings": 32768,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e4, "mrope_section": mrope},
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
            "bos_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "in_channels": 3,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 56,
            "out_hidden_size": hidden_size,
            "fullatt_block_indexes": [1],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.do_sample = False

    tmp = out.parent / f".{out.name}.{os.getpid()}.building"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    atomic_write_text(
        tmp / "README.md",
        f"Tiny random Qwen2.5-VL built by riskdistill.teacher.tiny_vlm (seed {seed}); not a trained model.\n",
    )
    if out.exists():
        if not overwrite:  # another process finished first: keep its folder
            shutil.rmtree(tmp)
            return out
        shutil.rmtree(out)
    tmp.rename(out)
    return out


if __name__ == "__main__":  # python -m riskdistill.teacher.tiny_vlm OUT_DIR [--seed N]
    import argparse

    ap = argparse.ArgumentParser(description="Write a tiny random Qwen2.5-VL model folder (offline).")
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overwrite", action="store_true")
    a = ap.parse_args()
    print(build_tiny_vlm(a.out_dir, seed=a.seed, overwrite=a.overwrite))

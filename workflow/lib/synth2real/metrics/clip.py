"""CLIP ViT-L/14 features and CLIPScore for shard datasets.

The paper measures density/coverage in the embedding space of CLIP ViT-L/14's image tower
(the projected image embedding, 768-d, not normalised: what ``clip.encode_image`` returns in
the authors' code) and reports CLIPScore on (image, detailed caption) pairs. Everything here
loads CLIP through :func:`load_clip` only, so tests can swap in a tiny random-weight CLIP saved
to a local directory and exercise the very same code path as the real model.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from synth2real.captions.prompts import CLIP_MAX_TOKENS, prompt_token_counts
from synth2real.shards import decode_png, read_shard

__all__ = [
    "ClipBundle",
    "caption_overflow_fraction",
    "clip_scores",
    "extract_features",
    "image_features",
    "load_clip",
    "shard_clip_scores",
    "text_features",
]


@dataclass
class ClipBundle:
    """A CLIP model with its image processor and tokenizer, on one device."""

    model: torch.nn.Module
    processor: object
    tokenizer: object
    device: torch.device
    dtype: torch.dtype

    @property
    def max_tokens(self) -> int:
        """Token budget of the text tower (77 for every OpenAI CLIP)."""
        cfg = self.model.config.text_config
        return min(CLIP_MAX_TOKENS, int(cfg.max_position_embeddings))


def load_clip(
    name_or_path: str | os.PathLike[str],
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
) -> ClipBundle:
    """Load a CLIP model, image processor and tokenizer from a hub id or a local directory.

    The single loading function of the CLIP family: workflow jobs pass the folder that
    ``snakemake weights`` filled with ``metrics.clip_model`` (``resources/weights/<id>``; jobs
    run offline), tests pass a directory holding a tiny random-weight model of the same
    classes. ``dtype`` defaults to float32 (features are
    compared across runs and devices, so no silent half precision).
    """
    from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer

    dev = torch.device(device) if device is not None else _default_device()
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    dtype = dtype or torch.float32
    src = str(name_or_path)
    model = CLIPModel.from_pretrained(src, dtype=dtype).to(dev).eval()
    processor = CLIPImageProcessor.from_pretrained(src)
    tokenizer = CLIPTokenizer.from_pretrained(src)
    return ClipBundle(
        model=model, processor=processor, tokenizer=tokenizer, device=dev, dtype=dtype
    )


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _as_pil(image: np.ndarray | Image.Image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    return Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")


def _embeds(out: object) -> torch.Tensor:
    """transformers 5 returns a model output whose ``pooler_output`` is the projection."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


@torch.no_grad()
def image_features(bundle: ClipBundle, images: Sequence[np.ndarray | Image.Image]) -> np.ndarray:
    """Projected CLIP image embeddings (N, d), float32, of one batch of images."""
    pixels = bundle.processor(images=[_as_pil(im) for im in images], return_tensors="pt")
    pixel_values = pixels["pixel_values"].to(bundle.device, bundle.dtype)
    feats = _embeds(bundle.model.get_image_features(pixel_values=pixel_values))
    return feats.float().cpu().numpy()


@torch.no_grad()
def text_features(bundle: ClipBundle, texts: Sequence[str]) -> np.ndarray:
    """Projected CLIP text embeddings (N, d), float32; texts truncated to 77 tokens."""
    tok = bundle.tokenizer(
        list(texts),
        padding=True,
        truncation=True,
        max_length=bundle.max_tokens,
        return_tensors="pt",
    )
    feats = _embeds(
        bundle.model.get_text_features(
            input_ids=tok["input_ids"].to(bundle.device),
            attention_mask=tok["attention_mask"].to(bundle.device),
        )
    )
    return feats.float().cpu().numpy()


def _shard_batches(
    shard_paths: Sequence[str | os.PathLike[str]], columns: list[str], batch_size: int
) -> Iterator[dict[str, list]]:
    """Rows of the shards in order, ``batch_size`` at a time (one shard in memory at once)."""
    pending: dict[str, list] = {c: [] for c in columns}
    for path in shard_paths:
        table = read_shard(path, columns)
        for c in columns:
            pending[c].extend(table.column(c).to_pylist())
        while len(pending[columns[0]]) >= batch_size:
            yield {c: v[:batch_size] for c, v in pending.items()}
            pending = {c: v[batch_size:] for c, v in pending.items()}
    if pending[columns[0]]:
        yield pending


def _count_rows(shard_paths: Sequence[str | os.PathLike[str]]) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in shard_paths)


def extract_features(
    bundle: ClipBundle,
    shard_paths: Sequence[str | os.PathLike[str]],
    batch_size: int = 64,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """CLIP image features (N, d) float32 and labels (N,) int64 of a split's shards, in order."""
    if not shard_paths:
        raise ValueError("no shards given")
    feats, labels = [], []
    bar = tqdm(total=_count_rows(shard_paths), desc="clip features", disable=not progress)
    for batch in _shard_batches(shard_paths, ["image", "label"], batch_size):
        feats.append(image_features(bundle, [decode_png(b) for b in batch["image"]]))
        labels.append(np.asarray(batch["label"], dtype=np.int64))
        bar.update(len(batch["label"]))
    bar.close()
    return np.concatenate(feats).astype(np.float32), np.concatenate(labels)


def clip_scores(
    bundle: ClipBundle,
    images: Sequence[np.ndarray | Image.Image],
    captions: Sequence[str],
    batch_size: int = 64,
) -> np.ndarray:
    """CLIPScore of each (image, caption) pair: ``100 * max(cos(E_img, E_txt), 0)``.

    Hessel et al. (2021) with the torchmetrics scale (100 instead of 2.5); captions beyond
    CLIP's 77 tokens are truncated, as CLIP itself would (see
    :func:`caption_overflow_fraction` for how many were).
    """
    if len(images) != len(captions):
        raise ValueError(f"{len(images)} images but {len(captions)} captions")
    out = []
    for a in range(0, len(images), batch_size):
        img = image_features(bundle, images[a : a + batch_size])
        txt = text_features(bundle, captions[a : a + batch_size])
        out.append(_scores(img, txt))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float64)


def _scores(img: np.ndarray, txt: np.ndarray) -> np.ndarray:
    img = img.astype(np.float64)
    txt = txt.astype(np.float64)
    cos = (img * txt).sum(1) / (np.linalg.norm(img, axis=1) * np.linalg.norm(txt, axis=1))
    return 100.0 * np.maximum(cos, 0.0)


def shard_clip_scores(
    bundle: ClipBundle,
    shard_paths: Sequence[str | os.PathLike[str]],
    text_column: str = "prompt",
    batch_size: int = 64,
    progress: bool = True,
) -> tuple[np.ndarray, list[str]]:
    """CLIPScores of every row of the shards against its own ``text_column``, and the texts."""
    scores, texts = [], []
    bar = tqdm(total=_count_rows(shard_paths), desc="clipscore", disable=not progress)
    for batch in _shard_batches(shard_paths, ["image", text_column], batch_size):
        caps = [str(t) for t in batch[text_column]]
        scores.append(clip_scores(bundle, [decode_png(b) for b in batch["image"]], caps))
        texts.extend(caps)
        bar.update(len(caps))
    bar.close()
    return np.concatenate(scores), texts


def caption_overflow_fraction(
    tokenizer: object, captions: Iterable[str], max_tokens: int = CLIP_MAX_TOKENS
) -> float:
    """Fraction of captions longer than ``max_tokens`` CLIP tokens (start/end included).

    Detailed captions often exceed CLIP's context, so CLIPScore only sees their beginning;
    reporting this fraction keeps that caveat next to the score.
    """
    counts = prompt_token_counts(list(captions), tokenizer)
    return float(np.mean([n > max_tokens for n in counts])) if counts else 0.0

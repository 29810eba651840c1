"""The embedded default's stand-ins for the paper's prompt-following scores (Fig. 3).

The paper puts each generator's GenEval score (top) and the CLIPScore of its caption images
(bottom) on the x axis. Neither exists for digits, so the demo measures what each stands for:

* **judge adherence** (stand-in for GenEval): the share of a dataset's images that an
  independent real-trained judge, an RBF SVM on real train pixels (none of the grid's
  networks), recognises as the class their prompt asked for;
* **caption agreement** (stand-in for CLIPScore): the share of the attributes a caption names
  that the generated image shows, measured with the digits captioner's own ruler
  (:func:`synth2real.captions.digits.caption_agreement`; chance is 1/3).

They are named as stand-ins wherever they are drawn (:data:`ADHERENCE`, :data:`CAPTION`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

#: How the figures and tables name the stand-ins.
ADHERENCE = "judge adherence (GenEval stand-in)"
CAPTION = "caption agreement (CLIPScore stand-in)"

Paths = Sequence[str | os.PathLike[str]]


def _grey(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) stored pixels as (N, H*W) greys in [0, 1]: the judge's features."""
    return (images.mean(axis=-1) / 255.0).reshape(len(images), -1)


def judge_adherence(real_train: Paths, synthetic: Paths) -> dict[str, float]:
    """Train the judge on the real train shards; score the synthetic shards' prompted labels.

    Returns the adherence and the judge's own accuracy on its training data (a sanity
    check: a judge that cannot tell real digits apart scores nothing).
    """
    from sklearn.svm import SVC

    from synth2real.shards import load_split

    x, y = load_split(real_train)
    judge = SVC().fit(_grey(x), y)
    fake, labels = load_split(synthetic)
    return {
        "adherence": float((judge.predict(_grey(fake)) == labels).mean()),
        "judge_train_accuracy": float(judge.score(_grey(x), y)),
        "n": int(len(labels)),
    }


def caption_score(synthetic: Paths, captions_table: str | os.PathLike[str]) -> dict[str, float]:
    """Caption agreement of a caption dataset's images with their prompts (the bin edges of
    the train captions table the prompts were drawn with)."""
    from synth2real.captions.digits import caption_agreement, read_thresholds
    from synth2real.shards import decode_images, read_shards

    table = read_shards(list(synthetic), ["image", "label", "prompt"])
    images = decode_images(table) / 255.0
    labels = table.column("label").to_numpy()
    prompts = [str(p) for p in table.column("prompt").to_pylist()]
    score = caption_agreement(images, labels, prompts, read_thresholds(captions_table))
    return {"clipscore": score, "n": int(len(labels))}

"""Each job imports only what it uses: a job's start-up is most of a small job's time.

Measured per job on the 2-core machine (CPU seconds): torch 2.1, torchvision (which pulls in
torch._dynamo) +1.8 more, seaborn +0.9 over matplotlib and pandas, pandas 0.5, NumPy 0.1.
The checks run the library calls of a job in a fresh interpreter and list the heavy modules it
loaded.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "workflow" / "lib"
HEAVY = ("torch", "torchvision", "torch._dynamo", "seaborn", "scipy", "pandas", "timm")


def loaded_after(code: str, tmp_path: Path) -> set[str]:
    """The :data:`HEAVY` modules a fresh interpreter holds after running ``code``."""
    script = textwrap.dedent(code) + textwrap.dedent(f"""
        import sys
        print("LOADED", *[m for m in {HEAVY!r} if m in sys.modules])
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
        env={"PYTHONPATH": str(LIB), "PATH": "/usr/bin:/bin"}, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("LOADED"))
    return set(line.split()[1:])


def test_evaluation_and_in_memory_training_do_not_import_torchvision(tmp_path):
    loaded = loaded_after(
        """
        import torch
        from synth2real.evaluate.evaluation import evaluate_to_csv
        from synth2real.evaluate.predict import predict
        from synth2real.metrics.features import classifier_features
        from synth2real.train.architectures import build_model
        from synth2real.train.augment import TransformSpec, eval_transform
        from synth2real.train.training import train_classifier
        x = torch.zeros(2, 16, 16, 3, dtype=torch.uint8)
        transform = eval_transform(TransformSpec())  # the paper path: whole image
        assert predict(build_model("smallcnn", 10), x, transform=transform).shape == (2, 10)
        """,
        tmp_path,
    )
    assert "torch" in loaded
    assert not {"torchvision", "torch._dynamo"} & loaded, loaded


def test_official_transforms_still_load_torchvision(tmp_path):
    loaded = loaded_after(
        """
        import torch
        from synth2real.train.augment import TransformSpec, eval_transform
        spec = TransformSpec(augment="official_rgb", input_size=8)
        assert eval_transform(spec)(torch.zeros(1, 16, 16, 3, dtype=torch.uint8)).shape[-1] == 8
        """,
        tmp_path,
    )
    assert "torchvision" in loaded


def test_distribution_job_is_numpy_only(tmp_path):
    loaded = loaded_after(
        """
        import numpy as np
        from synth2real import compute_prdc
        from synth2real.metrics.features import load_features, save_features
        from synth2real.metrics.prdc import per_class_prdc
        rng = np.random.default_rng(0)
        save_features("f.npz", rng.standard_normal((60, 8)), np.arange(60) % 2)
        x, y = load_features("f.npz")
        assert 0 <= compute_prdc(x, x + 0.1, nearest_k=3)["coverage"] <= 1
        assert len(per_class_prdc(x, y, x, y, nearest_k=3)) == 2
        """,
        tmp_path,
    )
    assert not {"torch", "torchvision", "scipy"} & loaded, loaded


@pytest.mark.parametrize(
    "code",
    [
        # samples_table / samples_prompts / sample_grid
        """
        import numpy as np
        from synth2real.figures.tables import class_grid, sample_grid, table_classes
        img = np.zeros((8, 8, 3), dtype=np.uint8)
        class_grid([("real", {0: [(0, img)]})], ["zero"], 1, "t", "grid")
        sample_grid({0: [(0, img)]}, {0: [(0, img)]}, ["zero"], 1, "s", "pairs")
        assert table_classes(10, 3) == [0, 4, 9]
        """,
        # gather_ipc and results_markdown
        """
        from synth2real.figures.paper import ipc_table, tables_for_markdown
        from synth2real.figures.tables import results_markdown
        assert ipc_table([]).empty
        """,
    ],
    ids=["image_tables", "ipc_and_markdown"],
)
def test_table_jobs_do_not_import_seaborn(code, tmp_path):
    assert "seaborn" not in loaded_after(code, tmp_path)

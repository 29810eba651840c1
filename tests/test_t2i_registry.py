"""config/generators.yaml against the paper's Sec. 4.1 settings; the schema against bad entries."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from synth2real.registry import (
    RegistryError,
    cfg_factor,
    download_patterns,
    generator_spec,
    load_registry,
    sort_by_release,
    validate_registry,
)

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "config" / "generators.yaml"
PAPER_IDS = [
    "sd15",
    "sd21",
    "sdxl",
    "sdxl-turbo",
    "pixart",
    "sd30",
    "flux-dev",
    "flux-schnell",
    "sd35",
    "sd35-large",
    "sd35-turbo",
    "sana",
    "lumina2",
    "qwen",
]
DISTILLED = {"sdxl-turbo", "flux-schnell", "sd35-turbo"}


@pytest.fixture(scope="module")
def registry():
    return load_registry(REGISTRY)


def test_registry_has_exactly_the_paper_generators(registry):
    assert sorted(registry) == sorted(PAPER_IDS)


def test_settings_follow_the_paper(registry):
    for gid, spec in registry.items():
        assert spec["output_size"] == 256, gid
        assert spec["resolution"] == (1024 if gid == "sdxl" else 512), gid
        if gid in DISTILLED:
            assert (spec["steps"], spec["guidance_scale"]) == (4, 0.0), gid
        else:
            assert (spec["steps"], spec["guidance_scale"]) == (50, 2.0), gid


def test_every_pipeline_and_scheduler_class_exists_in_diffusers(registry):
    import diffusers

    for gid, spec in registry.items():
        assert hasattr(getattr(diffusers, spec["pipeline"], None), "from_pretrained"), gid
        if "scheduler" in spec:
            assert hasattr(getattr(diffusers, spec["scheduler"], None), "from_config"), gid


def test_guidance_keyword_is_a_parameter_of_the_pipeline_call(registry):
    import inspect

    import diffusers

    for gid, spec in registry.items():
        params = inspect.signature(getattr(diffusers, spec["pipeline"]).__call__).parameters
        assert spec["guidance_arg"] in params, gid
        for key in spec["pipeline_kwargs"]:
            assert key in params, (gid, key)


def test_release_dates_are_real_dates_and_order_the_timeline(registry):
    for spec in registry.values():
        dt.date.fromisoformat(spec["release_date"])
    order = sort_by_release(registry)
    assert order[0] == "sd15" and order[-1] == "qwen"
    assert order.index("sdxl") < order.index("sdxl-turbo") < order.index("flux-dev")


def test_geneval_entries_are_scores_with_sources(registry):
    scored = {g: s["geneval"] for g, s in registry.items() if s["geneval"]}
    assert len(scored) >= 8
    for gid, ge in scored.items():
        assert 0 < ge["score"] < 1 and ge["source"], gid
    # Who computed each score marks its Fig. 3 point: the paper's own source (Wu et al.) covers
    # six of the models, the GenEval and Sana papers the rest.
    cites = {g: ge["cite"] for g, ge in scored.items()}
    assert all(scored[g]["source"].startswith(c) for g, c in cites.items())
    assert sorted(g for g, c in cites.items() if c == "Wu et al. 2025") == [
        "flux-dev", "lumina2", "pixart", "qwen", "sd30", "sd35-large",
    ]  # fmt: skip
    assert set(cites.values()) == {"Wu et al. 2025", "Ghosh et al. 2023", "Xie et al. 2024"}
    # GenEval rises with model generation (the paper's Fig. 3 x-axis).
    assert scored["sd15"]["score"] < scored["sdxl"]["score"] < scored["qwen"]["score"]


def test_cfg_factor_counts_real_guidance_passes(registry):
    assert cfg_factor(registry["sd15"]) == 2
    assert cfg_factor(registry["qwen"]) == 2
    assert cfg_factor(registry["flux-dev"]) == 1  # guidance-distilled: one pass
    for gid in DISTILLED:
        assert cfg_factor(registry[gid]) == 1


def test_download_patterns_fetch_one_weight_variant(registry):
    allow, ignore = download_patterns(registry["sdxl"])
    assert "*/*.fp16.safetensors" in allow and "*/*.safetensors" not in allow
    allow, _ = download_patterns(registry["flux-dev"])
    assert "*/*.safetensors" in allow and "model_index.json" in allow
    assert "safety_checker/*" in ignore


def _doc(**entry):
    base = {
        "display_name": "X",
        "release_date": "2024-01-01",
        "repo_id": "org/x",
        "pipeline": "FluxPipeline",
        "steps": 4,
        "guidance_scale": 0.0,
        "resolution": 512,
        "dtype": "bfloat16",
        "gated": False,
    }
    base.update(entry)
    return {
        "output_size": 256,
        "generators": {"x": {k: v for k, v in base.items() if v is not None}},
    }


def test_demo_entries_need_only_sampling_settings():
    validate_registry(
        {
            "output_size": 28,
            "generators": {
                "digits-ddpm": {
                    "pipeline": "DigitsDDPM",
                    "steps": 50,
                    "guidance_scale": 1.0,
                    "resolution": 28,
                }
            },
        }
    )


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"repo_id": None}, "repo_id"),
        ({"dtype": "int8"}, "int8"),
        ({"steps": 0}, "minimum"),
        ({"release_date": dt.date(2024, 1, 1)}, "string"),
        ({"geneval": {"score": 1.5, "source": "x"}}, "geneval"),
        ({"guidance_kind": "magic"}, "magic"),
        ({"jpeg_quality": 101}, "maximum"),
        ({"resize_filter": "lanczos"}, "generators/x: resize_filter was removed: real and synth"),
    ],
)
def test_schema_rejects_bad_entries(entry, message):
    with pytest.raises(RegistryError, match=message):
        validate_registry(_doc(**entry))


def test_removed_top_level_key_is_rejected_not_ignored():
    doc = _doc()
    doc["resize_filter"] = "bicubic"
    with pytest.raises(RegistryError, match="<top>: resize_filter was removed"):
        validate_registry(doc)


def test_schema_rejects_ids_that_break_dataset_names():
    doc = _doc()
    doc["generators"]["flux_dev"] = doc["generators"].pop("x")
    with pytest.raises(RegistryError, match="flux_dev"):
        validate_registry(doc)


def test_entry_defaults_and_top_level_output_size(tmp_path):
    doc = _doc(pipeline_kwargs=None)
    doc["output_size"] = 64
    path = tmp_path / "config" / "gens.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(doc))
    spec = generator_spec(path, "x")
    assert spec["id"] == "x" and spec["output_size"] == 64 and spec["jpeg_quality"] is None
    assert spec["guidance_arg"] == "guidance_scale" and spec["pipeline_kwargs"] == {}
    with pytest.raises(RegistryError, match="known: x"):
        generator_spec(path, "nope")

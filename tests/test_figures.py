"""Every paper figure from a fixture results table: sidecars hold exactly the plotted points."""

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import make_class_images, write_split

from synth2real import catalog
from synth2real.figures import paper as pf
from synth2real.figures import plots
from synth2real.figures.tables import class_grid, pick_samples, results_markdown, table_classes

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = {
    "g1": {"display_name": "Gen One", "release_date": "2022-03-01",
           "geneval": {"score": 0.40, "source": "paper A", "cite": "Wu et al. 2025"}},
    "g2": {"display_name": "Gen Two", "release_date": "2023-07-15",
           "geneval": {"score": 0.65, "source": "paper B", "cite": "Wu et al. 2025"}},
    "g3": {"display_name": "Gen Three", "release_date": "2025-01-10", "geneval": None},
}  # fmt: skip
PROMPTS = ["classname", "caption"]
SYNTH = {f"{g}-{p}": (g, p) for g in REGISTRY for p in PROMPTS}
PROBES = {
    "rgb": {"transform": "identity", "archs": ["resnet50", "vit_tiny"]},
    "texture": {"transform": "identity", "archs": ["bagnet9"]},
    "depth": {"transform": "depth", "archs": ["resnet50"]},
    "lowpass": {"transform": "lowpass", "cutoff": 0.2, "archs": ["resnet50"]},
    "highpass": {"transform": "highpass", "cutoff": 0.2, "archs": ["resnet50"]},
}
#: The figures draw_all draws from the run's tables (the others have rules of their own).
ALL_FIGURES = [f.name for f in catalog.table_figures()]


def top1(train, probe, arch, test):
    """A distinct, reproducible accuracy per row, so a misplaced value is caught."""
    return round(0.05 + (hash((train, probe, arch, test)) % 9000) / 10000, 4)


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evals")
    evals = []
    for d in ["real", *SYNTH]:
        for probe, spec in PROBES.items():
            for arch in spec["archs"]:
                tests = ["real", *SYNTH] if d == "real" else ["real"]
                for test in tests:
                    path = tmp / f"{d}.{probe}.{arch}.{test}.csv"
                    row = {"train_dataset": d, "probe": probe, "arch": arch,
                           "test_dataset": test, "top1": top1(d, probe, arch, test),
                           "top5": 1.0, "loss": 0.1, "n": 100, "per_class": "{}"}  # fmt: skip
                    pd.DataFrame([row]).to_csv(path, index=False)
                    evals.append(path)
    rng = np.random.default_rng(0)
    dist = pd.DataFrame(
        [
            {
                "dataset": d,
                "precision": 0.5,
                "recall": 0.4,
                "density": rng.uniform(0.1, 1.5),
                "coverage": rng.uniform(0, 1),
            }
            for d in SYNTH
        ]  # fmt: skip
    )
    clip = pd.DataFrame(
        [{"dataset": f"{g}-caption", "clipscore": 25 + i} for i, g in enumerate(REGISTRY)]
    )
    ipc = pd.DataFrame(
        [
            {
                "dataset": d,
                "generator": gv[0],
                "variant": gv[1],
                "ipc": n,
                "arch": "resnet50",
                "top1": n / 1000,
            }
            for d, gv in {"real": ("real", "real"), **SYNTH}.items()
            for n in (10, 100, 500)
        ]  # fmt: skip
    )
    freqs = np.linspace(0, 1, 9)
    spectra = pd.concat(
        [
            pd.DataFrame(
                {"dataset": d, "frequency": freqs, "amplitude": (freqs + 0.01) ** -(2 + i / 10)}
            )
            for i, d in enumerate(["real", *SYNTH])
        ],  # fmt: skip
        ignore_index=True,
    )
    return pf.FigureTables(
        results=pf.results_from_evals(evals, SYNTH),
        distribution=dist,
        registry=REGISTRY,
        synthetic=SYNTH,
        probes=PROBES,
        rgb_archs=["resnet50", "vit_tiny"],
        reference_arch="resnet50",
        clipscore=clip,
        ipc=ipc,
        spectra=spectra,
        slopes=pf.spectrum_slopes(spectra, (0.1, 0.9)),
    )


@pytest.fixture(scope="module")
def drawn(tables, tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    pf.draw_all(tables, out, names=ALL_FIGURES)
    return out


def read(drawn, name):
    for ext in ("png", "pdf", "csv"):
        assert (drawn / f"{name}.{ext}").stat().st_size > 0, f"{name}.{ext}"
    return pd.read_csv(drawn / f"{name}.csv")


def test_every_figure_written(drawn):
    for name in ALL_FIGURES:
        read(drawn, name)


def test_catalog_names_are_the_public_figure_names():
    """The names are file stems users and tools read: the catalog must not rename any."""
    assert [f.name for f in catalog.run_figures()] == [
        "release", "accuracy", "geneval", "clipscore", "ipc", "geneval_wu", "probes",
        "probe_gaps", "frequency_bands", "density_coverage", "transfer",
    ]  # fmt: skip
    assert [f.name for f in catalog.page_figures()] == [*ALL_FIGURES]
    assert ALL_FIGURES[-1] == "spectra"
    own_rule = [f.name for f in catalog.FIGURES if f.name not in ALL_FIGURES]
    assert own_rule == ["probe_views"]  # rule probe_views: it reads shards, not tables
    assert [(f.name, f.paper) for f in catalog.TABLES] == [("caption_samples", "Table 3")]
    for f in (*catalog.FIGURES, *catalog.TABLES):
        assert (ROOT / "workflow" / "report" / f.caption).is_file(), f.caption
        assert catalog.BY_NAME[f.name] is f


def test_fillable_follows_the_grid():
    """Each optional figure is fillable exactly when the grid has what it plots."""
    base = dict(registry={"g": {"geneval": None}}, generators=["g"], prompt_types=["classname"],
                probes={"rgb": {"transform": "identity"}}, ipc_grid=list,
                config={"metrics": {"adherence": "registry"}})  # fmt: skip
    always = ["release", "accuracy", "probes", "probe_gaps", "probe_views", "density_coverage",
              "transfer", "spectra"]  # fmt: skip
    assert catalog.filled(SimpleNamespace(**base)) == always
    # Table 3 shows captions: none in a class-name grid (the demo), there with caption prompts
    assert catalog.filled(SimpleNamespace(**base), list(catalog.TABLES)) == []
    captions = SimpleNamespace(**{**base, "prompt_types": ["classname", "caption"]})
    assert catalog.filled(captions, list(catalog.TABLES)) == ["caption_samples"]
    wu = {"score": 0.5, "source": "x", "cite": catalog.WU_GENEVAL}
    variants = {
        "geneval": {"registry": {"g": {"geneval": {"score": 0.5, "source": "x"}}}},
        "geneval_wu": {"registry": {"g": {"geneval": wu}}},
        "clipscore": {"prompt_types": ["classname", "caption"]},
        "ipc": {"ipc_grid": lambda: [10]},
        "frequency_bands": {"probes": {"rgb": {"transform": "identity"},
                                       "lowpass": {"transform": "lowpass"}}},
    }  # fmt: skip
    # The digits measure their GenEval stand-in (metrics.adherence: judge).
    judge = SimpleNamespace(**{**base, "config": {"metrics": {"adherence": "judge"}}})
    assert {"geneval", "geneval_wu"} <= set(catalog.filled(judge))
    captions_only = SimpleNamespace(**{**vars(judge), "prompt_types": ["caption"]})
    assert "geneval_wu" not in catalog.filled(captions_only)  # its one score is class names'
    for name, change in variants.items():
        filled = catalog.filled(SimpleNamespace(**{**base, **change}))
        extra = ["geneval"] if name == "geneval_wu" else []  # a Wu et al. score is a GenEval
        assert sorted(filled) == sorted([*always, *extra, name]), name


def test_judge_adherence_fills_both_geneval_panels(tables, tmp_path):
    """With the measured stand-in, ``geneval`` puts each dataset at its own adherence and
    ``geneval_wu`` puts both of a generator's datasets at its class-name adherence: one score
    per generator from one source, as the paper draws Fig. 3 (top)."""
    measure = "judge adherence (GenEval stand-in)"
    score = {d: 0.5 + 0.1 * i for i, d in enumerate(SYNTH)}
    adherence = pd.DataFrame({"dataset": list(score), "adherence": list(score.values()),
                              "measure": measure})  # fmt: skip
    judged = pf.FigureTables(**{**vars(tables), "adherence": adherence})
    pf.draw_all(judged, tmp_path, names=["geneval", "geneval_wu"])
    per_dataset, per_generator = read(tmp_path, "geneval"), read(tmp_path, "geneval_wu")
    assert len(per_dataset) == len(per_generator) == len(SYNTH) * 2  # 2 rgb archs
    for r in per_dataset.itertuples():
        assert r.geneval == pytest.approx(score[r.train_dataset])
        assert r.top1 == top1(r.train_dataset, "rgb", r.arch, "real")
    for r in per_generator.itertuples():
        assert r.geneval == pytest.approx(score[f"{r.generator}-classname"])
        assert r.geneval_source == measure
        assert r.top1 == top1(r.train_dataset, "rgb", r.arch, "real")


def test_page_lists_every_figure_with_its_label(tables, tmp_path):
    figs = {name: f"{name}.png" for name in ALL_FIGURES}
    pf.write_page(tmp_path / "page.md", "g2", tables, figs, samples=[], context=["g1"])
    text = (tmp_path / "page.md").read_text()
    assert "- Fig. 5: density against coverage, coloured by top-1: ![density_coverage]" in text
    assert "- Amplitude spectra beside real: ![spectra](figures/spectra.png)" in text
    positions = [text.index(f"![{name}](figures/{name}.png)") for name in ALL_FIGURES]
    assert positions == sorted(positions)  # in catalog order


def test_release_figure_points(drawn):
    pts = read(drawn, "release")
    assert len(pts) == len(SYNTH)
    assert list(pts.release_date) == sorted(pts.release_date)  # drawn in date order
    for r in pts.itertuples():
        assert r.top1 == top1(r.train_dataset, "rgb", "resnet50", "real")
        assert r.release_date == REGISTRY[r.generator]["release_date"]
        assert r.real_baseline == top1("real", "rgb", "resnet50", "real")
    assert pts.highlight.all()


def test_geneval_and_clipscore_points(drawn):
    gen = read(drawn, "geneval")
    # g3 has no published GenEval: 2 generators x 2 prompt types x 2 rgb archs
    assert len(gen) == 2 * 2 * 2 and set(gen.generator) == {"g1", "g2"}
    for r in gen.itertuples():
        assert r.geneval == REGISTRY[r.generator]["geneval"]["score"]
        assert r.geneval_source == REGISTRY[r.generator]["geneval"]["source"]
        assert r.top1 == top1(r.train_dataset, "rgb", r.arch, "real")
        assert r.real_baseline == top1("real", "rgb", r.arch, "real")
    clip = read(drawn, "clipscore")
    assert len(clip) == 3 * 2 * 2
    for r in clip.itertuples():
        assert r.clipscore == 25 + list(REGISTRY).index(r.generator)  # its caption dataset's


def test_geneval_points_are_marked_by_who_computed_them(drawn):
    gen = read(drawn, "geneval")
    for r in gen.itertuples():
        assert r.geneval_cite == REGISTRY[r.generator]["geneval"]["cite"]
    wu = read(drawn, "geneval_wu")
    pd.testing.assert_frame_equal(wu, gen)  # both fixture scores are Wu et al.'s
    registry = {**REGISTRY, "g1": {"geneval": {"score": 0.4, "source": "Ghosh et al., T. 2"}}}
    table = plots.geneval_table(registry)
    assert dict(zip(table.generator, table.x_cite)) == {
        "g1": "Ghosh et al., T. 2",  # no cite: marked by its full source
        "g2": "Wu et al. 2025",
    }
    only_wu = plots.geneval_table(registry, cite=catalog.WU_GENEVAL)
    assert list(only_wu.generator) == ["g2"] and list(only_wu.x) == [0.65]


def test_probe_gaps_are_synth_over_real_of_the_same_probe_and_arch(drawn):
    gaps = read(drawn, "probe_gaps")
    pairs = [(p, a) for p, spec in PROBES.items() for a in spec["archs"]]
    assert len(gaps) == len(SYNTH) * len(pairs)  # rgb included: the gap the others compare to
    assert list(dict.fromkeys(zip(gaps.probe, gaps.arch))) == pairs
    for r in gaps.itertuples():
        synth = top1(r.train_dataset, r.probe, r.arch, "real")
        real = top1("real", r.probe, r.arch, "real")
        assert (r.synth_top1, r.real_top1) == (synth, real)
        assert r.relative_top1 == pytest.approx(synth / real)
        assert r.label == f"{r.probe} ({r.arch})"


def test_probe_figures_points(drawn):
    probes = read(drawn, "probes")
    assert len(probes) == len(SYNTH) * 4  # texture, depth, lowpass, highpass
    for r in probes.itertuples():
        assert r.probe_top1 == top1(r.train_dataset, r.probe, r.arch, "real")
        assert r.rgb_top1 == top1(r.train_dataset, "rgb", "resnet50", "real")
    assert set(probes[probes.probe == "depth"].panel) == {"structure/texture"}
    bands = read(drawn, "frequency_bands")
    assert len(bands) == len(SYNTH) * 2 and set(bands.probe) == {"lowpass", "highpass"}


def test_density_transfer_ipc_spectra_points(drawn, tables):
    dc = read(drawn, "density_coverage")
    assert len(dc) == len(SYNTH)
    merged = dc.merge(tables.distribution, on="dataset", suffixes=("", "_in"))
    assert np.allclose(merged.density, merged.density_in)
    for r in dc.itertuples():
        assert r.top1 == top1(r.dataset, "rgb", "resnet50", "real")
    tr = read(drawn, "transfer")
    assert len(tr) == len(SYNTH)
    for r in tr.itertuples():
        assert r.real_to_synth == top1("real", "rgb", "resnet50", r.dataset)
        assert r.synth_to_real == top1(r.dataset, "rgb", "resnet50", "real")
    ipc = read(drawn, "ipc")
    assert len(ipc) == 7 * 3 and np.allclose(ipc.top1, ipc.ipc / 1000)
    spec = read(drawn, "spectra")
    assert len(spec) == 7 * 8  # the zero-frequency bin is not drawn on log axes
    acc = read(drawn, "accuracy")
    assert len(acc) == len(SYNTH)


def test_highlight_marks_only_one_generator(tables, tmp_path):
    points = pf.draw_all(tables, tmp_path, highlight="g2", names=ALL_FIGURES)
    for name, pts in points.items():
        assert (tmp_path / f"{name}.png").stat().st_size > 0
        lit = set(pts[pts.highlight].generator) - {"real"}
        assert lit == {"g2"}, name
        assert (~pts.highlight).any(), f"{name}: other generators drawn as context"
        assert len(pd.read_csv(tmp_path / f"{name}.csv")) == len(pts)


def test_probe_rows_without_an_rgb_row_are_left_out(tables, tmp_path):
    """A page's context may hold a dataset's probe evaluations before its rgb one."""
    results = tables.results
    half_done = (results.train_dataset == "g3-caption") & (results.probe == "rgb")
    partial = pf.FigureTables(**{**tables.__dict__, "results": results[~half_done]})
    probes = pf.draw_all(partial, tmp_path, highlight="g1", names=["probes"])["probes"]
    assert set(probes.train_dataset) == set(SYNTH) - {"g3-caption"}
    assert len(probes) == (len(SYNTH) - 1) * 4


def test_empty_tables_draw_saying_why(tables, tmp_path):
    empty = pf.FigureTables(**{**tables.__dict__, "ipc": pf.read_csvs([], pf.IPC_COLUMNS),
                               "clipscore": pf.read_csvs([], pf.CLIPSCORE_COLUMNS)})  # fmt: skip
    points = pf.draw_all(empty, tmp_path, names=["ipc", "clipscore"])
    assert all(len(p) == 0 for p in points.values())
    assert (tmp_path / "ipc.png").stat().st_size > 0


def test_sample_tables(tmp_path):
    shards = {}
    for k, d in enumerate(["real", "g1-classname", "g2-classname"]):
        images, labels = make_class_images(3, 4, 8, seed=k)
        shards[d] = [write_split(tmp_path / f"{d}.parquet", images, labels)]
    labels = table_classes(4, 3)
    assert labels == [0, 2, 3]
    picked = [(d, pick_samples(s, labels, 2)) for d, s in shards.items()]
    assert [i for i, _ in picked[0][1][2]] == [6, 7]  # first two rows of class 2
    pts = class_grid(picked, ["a", "b", "c", "d"], 2, "t", tmp_path / "table")
    assert len(pts) == 3 * 3 * 2
    assert (tmp_path / "table.png").stat().st_size > 0
    assert len(pd.read_csv(tmp_path / "table.csv")) == len(pts)


def test_results_markdown_has_every_number(tables):
    text = results_markdown(pf.tables_for_markdown(tables), "run")
    s2r = tables.results[tables.results.direction == "synth->real"]
    for v in s2r.top1:
        assert f"{v:.4f}" in text
    assert "paper B" in text and "2023-07-15" in text
    page = results_markdown(pf.tables_for_markdown(tables, "g1"), "g1")
    assert "g2-caption" not in page and "g1-caption" in page


def test_run_tables_reads_a_jobs_inputs_and_params(tables, tmp_path):
    """figures.py and results_markdown.py build their tables through pf.run_tables."""
    paths = {}
    for name in ("results", "distribution", "slopes"):
        paths[name] = tmp_path / f"{name}.csv"
        getattr(tables, name).to_csv(paths[name], index=False)
    clip = [tmp_path / f"clip{i}.csv" for i in range(len(tables.clipscore))]
    for i, path in enumerate(clip):
        tables.clipscore.iloc[[i]].to_csv(path, index=False)
    params = SimpleNamespace(
        registry=REGISTRY, synthetic=SYNTH, probes=PROBES,
        rgb_archs=["resnet50", "vit_tiny"], reference_arch="resnet50",
    )  # fmt: skip
    inputs = SimpleNamespace(results=paths["results"], distribution=paths["distribution"],
                             clipscore=clip, ipc=[])  # fmt: skip
    got = pf.run_tables(inputs, params)
    pd.testing.assert_frame_equal(got.distribution, tables.distribution)
    assert list(got.clipscore.clipscore) == list(tables.clipscore.clipscore)
    assert got.results.top1.tolist() == tables.results.top1.tolist()
    assert got.ipc.empty and list(got.ipc.columns) == pf.IPC_COLUMNS
    assert got.slopes.empty and got.reference_arch == "resnet50"  # no slopes input declared
    inputs.slopes = paths["slopes"]
    got = pf.run_tables(inputs, params)
    assert got.slopes.alpha.tolist() == pytest.approx(tables.slopes.alpha.tolist())


# --------------------------------------------------------------------------- Fig. 2, Table 3
VIEW_PROBES = {
    "rgb": {"transform": "identity", "archs": ["smallcnn"]},
    "texture": {"transform": "identity", "archs": ["bagnet9"]},
    "lowpass": {"transform": "lowpass"},
    "highpass": {"transform": "highpass"},
}


def numbered_shard(path, values, source_ids, labels):
    """A 16 px shard whose row i is the flat grey value ``values[i]`` (so a cell names its row)."""
    from synth2real.shards import encode_png, write_shard

    write_shard(
        {
            "image": [encode_png(np.full((16, 16, 3), v, np.uint8)) for v in values],
            "label": list(labels),
            "class_id": [f"c{y}" for y in labels],
            "prompt": [""] * len(values),
            "seed": [0] * len(values),
            "source_id": list(source_ids),
        },
        path,
    )
    return path


@pytest.fixture
def view_sources(tmp_path):
    """Real and a caption dataset (200 rows each) with lowpass/highpass views as split dirs."""
    n = 200
    real_ids = [f"img{i:03d}" for i in range(n)]
    labels = [i // 100 for i in range(n)]
    # the caption dataset's rows regenerate real images in another order: real row 0 is row 70
    synth_ids = [f"{real_ids[(i + n - 70) % n]}/0" for i in range(n)]
    sources = {}
    for d, ids, base in (("real", real_ids, 0), ("g1-caption", synth_ids, 100)):
        root = tmp_path / d
        values = [(base + i) % 256 for i in range(n)]
        data = numbered_shard(root / "shard-00000.parquet", values, ids, labels)
        views = {}
        for probe, offset in (("lowpass", 1), ("highpass", 2)):
            view = root / probe
            view.mkdir(parents=True)
            shifted = [(v + offset) % 256 for v in values]  # lowpass of row 70: 171
            numbered_shard(view / "shard-00000.parquet", shifted, ids, labels)
            (view / "shard-00001.parquet").write_bytes(b"not a shard: must never be opened")
            views[probe] = str(view)
        sources[d] = {"data": str(data), "views": views}
    return sources


def test_probe_views_show_the_same_scene_under_every_probe(view_sources, tmp_path, monkeypatch):
    from synth2real.figures import examples

    batches = []
    real_iter = examples.pq.ParquetFile.iter_batches

    def counted(self, *args, **kwargs):
        for b in real_iter(self, *args, **kwargs):
            batches.append(b.num_rows)
            yield b

    monkeypatch.setattr(examples.pq.ParquetFile, "iter_batches", counted)
    cells, points = examples.probe_view_images(view_sources, VIEW_PROBES)
    assert list(cells) == ["real", "g1-caption"] and list(cells["real"]) == list(VIEW_PROBES)
    # real shows row 0; the caption dataset row 70, whose caption is real row 0's
    assert points.groupby("dataset", sort=False).row.first().to_dict() == {
        "real": 0,
        "g1-caption": 70,
    }
    assert set(points[points.dataset == "g1-caption"].source_id) == {"img000/0"}
    assert cells["real"]["rgb"].max() == 0 and cells["g1-caption"]["rgb"].min() == 170
    assert cells["real"]["lowpass"].max() == 1 and cells["g1-caption"]["lowpass"].max() == 171
    # 16 px cut into 9 px BagNet patches: 2 x 2 tiles and a white gap line between them
    texture = cells["g1-caption"]["texture"]
    assert texture.shape == (17, 17, 3)
    assert (texture[9] == 255).all() and (texture[:, 9] == 255).all()
    assert (texture[:9, :9] == 170).all() and (texture[10:, 10:] == 170).all()
    assert cells["real"]["highpass"].dtype == np.uint8  # flat image: stretched to 0
    shown = dict(zip(points.probe, points.shown))
    assert shown == {"rgb": "as stored", "texture": "9x9 patches", "lowpass": "as stored",
                     "highpass": "contrast stretched"}  # fmt: skip
    # one read per shard shown (data, lowpass, highpass), each only up to its row: row 0 one
    # batch, row 70 two, of the 6 x 200 rows; the views' other shard is never opened
    assert examples._BATCH_ROWS == 64
    assert batches == [64] * 3 + [64, 64] * 3
    out = examples.probe_views_figure(cells, points, {"g1-caption": "Gen One (caption)"},
                                      tmp_path / "probe_views")  # fmt: skip
    assert len(pd.read_csv(tmp_path / "probe_views.csv")) == len(out) == 2 * len(VIEW_PROBES)
    assert (tmp_path / "probe_views.png").stat().st_size > 0


def test_probe_views_fall_back_to_the_same_class(view_sources):
    from synth2real.figures import examples

    real = {"source_id": "not-captioned", "label": 1}
    assert examples.matching_row(real, view_sources["g1-caption"]["data"]) == 100
    assert examples.matching_row({**real, "label": 9}, view_sources["g1-caption"]["data"]) == 0
    rows = examples.read_rows(view_sources["real"]["data"], [5, 1], ["source_id"])
    assert rows.column("source_id").to_pylist() == ["img005", "img001"]
    with pytest.raises(IndexError, match="not rows \\[200\\]"):
        examples.read_rows(view_sources["real"]["data"], [200], ["source_id"])


def test_patch_size_and_stretch():
    from synth2real.figures import examples

    assert examples.patch_size({"archs": ["resnet50", "bagnet9"]}) == 9
    assert examples.patch_size({"archs": ["resnet50"]}) is None
    band = np.array([[126, 128], [130, 127]], np.uint8)
    assert examples.stretch(band).tolist() == [[0, 128], [255, 64]]


def test_caption_samples_are_the_first_captions_of_the_table_classes():
    from synth2real.figures.examples import caption_samples, caption_samples_markdown

    classes = [{"class_id": f"n{i}", "class_name": f"class {i}", "label": i} for i in range(5)]
    rows = [
        {"image_id": f"n{c}_{k}", "class_id": f"n{c}", "caption": f" caption {k} of {c} | x "}
        for c in range(5)
        for k in (3, 0, 2, 1)  # the captioner's order is not image-id order
    ]
    labels = table_classes(5, 3)
    samples = caption_samples(pd.DataFrame(rows), classes, labels, per_class=2)
    assert labels == [0, 2, 4]
    assert samples.to_dict("list") == {
        "class": ["class 0", "class 0", "class 2", "class 2", "class 4", "class 4"],
        "image_id": ["n0_0", "n0_1", "n2_0", "n2_1", "n4_0", "n4_1"],
        "caption": [f"caption {k} of {c} | x" for c in (0, 2, 4) for k in (0, 1)],
    }
    text = caption_samples_markdown(samples, ["gpt-4.1-nano"])
    assert text.startswith("# Sample captions (captioned by gpt-4.1-nano)\n")
    assert "| class 2 | n2_1 | caption 1 of 2 \\| x |" in text


# --- sample figures at paper scale: they read only the rows they draw
MEMORY_PROBE = """
import sys
from synth2real.figures.tables import sample_grid_of_shards, sample_table_of_shards
from synth2real.shards import load_split

shards, out, mode = sys.argv[1].split(","), sys.argv[2], sys.argv[3]
names = [f"class{c}" for c in range(20)]
figures = {"samples_per_class": 4, "table_classes": 8, "table_samples_per_class": 1}
if mode == "figures":  # what sample_grid.py and samples_table.py call
    sample_grid_of_shards(shards, shards, names, figures, "synth", out + "/grid")
    sample_table_of_shards([("real", shards), ("synth", shards)], names, figures, "t",
                           out + "/table")
else:  # the control: decoding the whole split, as sample_grid.py did
    load_split(shards)
# VmHWM: this process's peak RSS (ru_maxrss would count the forking pytest process's)
status = open("/proc/self/status").read()
print(int(status.split("VmHWM:")[1].split()[0]) // 1024)
"""
LIB = Path(__file__).resolve().parents[1] / "workflow" / "lib"
MEMORY_TOLERANCE_MB = 32  # allocator noise (up to 12 MB seen); the control grows ~190 MB


def split_of(root, per_class, shard_size=100, n_classes=20, size=64):
    """A class-major split of incompressible 64 px images (12 KB PNG each), as real data."""
    rng = np.random.default_rng(per_class)
    labels = np.repeat(np.arange(n_classes), per_class)
    paths = []
    for start in range(0, len(labels), shard_size):
        y = labels[start : start + shard_size]
        images = rng.integers(0, 256, (len(y), size, size, 3), dtype=np.uint8)
        paths.append(write_split(root / f"shard-{start // shard_size:05d}.parquet", images, y))
    return paths


def peak_rss_mb(shards, tmp_path, mode):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, ",".join(shards), str(tmp_path), mode],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(LIB)},  # this checkout's
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return int(proc.stdout.split()[-1])


def test_sample_figures_memory_does_not_grow_with_split_size(tmp_path):
    """Sample grids and Tables 1-2 at 1x and 10x split size (20 classes, 20 vs 200 images
    each, 100-row shards): the same peak memory within MEMORY_TOLERANCE_MB, while decoding
    the split (the control) grows by far more. At most table_classes classes are drawn."""
    (tmp_path / "1x").mkdir()
    (tmp_path / "10x").mkdir()
    small, large = split_of(tmp_path / "1x", 20), split_of(tmp_path / "10x", 200)
    peaks = {n: peak_rss_mb(s, tmp_path, "figures") for n, s in (("1x", small), ("10x", large))}
    print(f"sample figures peak RSS: {peaks}")
    assert peaks["10x"] <= peaks["1x"] + MEMORY_TOLERANCE_MB, peaks
    control = {n: peak_rss_mb(s, tmp_path, "load") for n, s in (("1x", small), ("10x", large))}
    assert control["10x"] > control["1x"] + 4 * MEMORY_TOLERANCE_MB, control
    grid = pd.read_csv(tmp_path / "grid.csv")
    assert grid["class"].nunique() == 8 and len(grid) == 2 * 8 * 4
    assert set(grid["index"]) == {200 * c + k for c in table_classes(20, 8) for k in range(4)}
    table = pd.read_csv(tmp_path / "table.csv")
    assert table["class"].nunique() == 8 and len(table) == 2 * 8


def test_table_theme_is_seaborns_theme():
    """figures.style.THEME_RC is what seaborn's whitegrid/paper theme sets in matplotlib (all
    of it but seaborn's own colormap), so the seaborn-free sample tables look the same."""
    code = """
import matplotlib as mpl
mpl.use("Agg")
from matplotlib.colors import to_rgb
defaults = dict(mpl.rcParams)
from synth2real.figures.style import THEME_RC
import seaborn as sns
sns.set_theme(style="whitegrid", context="paper")
seaborn = {k: v for k, v in mpl.rcParams.items() if v != defaults[k] and k != "image.cmap"}
def norm(k, v):
    if k == "axes.prop_cycle":
        return [to_rgb(c) for c in v.by_key()["color"]]
    return getattr(v, "value", v) if not isinstance(v, (bool, int, float, str)) else v
assert set(seaborn) == set(THEME_RC), set(seaborn) ^ set(THEME_RC)
bad = [k for k in seaborn if norm(k, seaborn[k]) != norm(k, THEME_RC[k])]
assert not bad, bad
print("same")
"""
    lib = Path(__file__).resolve().parents[1] / "workflow" / "lib"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(lib)}
    )
    assert proc.stdout.strip() == "same", proc.stderr[-2000:]

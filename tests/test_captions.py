"""Captioning (issue 4) against a local OpenAI-compatible server, with the real openai client."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from fake_openai_server import FakeOpenAIServer, FaultPlan, caption_for, image_key

from synth2real.captions.batch import batch_line, split_requests
from synth2real.captions.core import (
    INSTRUCTION_PRESETS,
    backoff_delay,
    chat_request_body,
    image_data_url,
    parse_answer,
    redact,
)
from synth2real.captions.cost import image_tokens, patch_count
from synth2real.captions.runner import (
    CaptionError,
    CaptionSettings,
    Prices,
    caption_images,
    dry_run,
    iter_images,
    load_clip_tokenizer,
    prompt_token_stats,
    read_captions,
)
from synth2real.captions.store import CaptionJournal
from synth2real.grid import Grid
from synth2real.io import atomic_write_json
from synth2real.paths import RunPaths
from synth2real.prompts.plan import build_prompt_table
from synth2real.prompts.tables import caption_prompts
from synth2real.seeding import derive_seed
from synth2real.shards import encode_png, write_shard

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "workflow" / "scripts" / "caption_images.py"
CLASSES = ("n01", "n02", "n03")


# -- fixtures -------------------------------------------------------------------------------


def make_shards(
    directory: Path, n_images: int, n_shards: int = 2, seed: int = 0, prefix: str = ""
) -> list[Path]:
    """Tiny real-data shards of distinct random images (ids <prefix>img000, img001, ...)."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    per_shard = -(-n_images // n_shards)
    for s in range(n_shards):
        rows = range(s * per_shard, min(n_images, (s + 1) * per_shard))
        images = [
            encode_png(rng.integers(0, 256, (20 + i % 5, 16 + i % 3, 3), dtype=np.uint8))
            for i in rows
        ]
        path = directory / f"real-train-{s:03d}.parquet"
        write_shard(
            {
                "image": images,
                "label": [i % 3 for i in rows],
                "class_id": [CLASSES[i % 3] for i in rows],
                "prompt": ["" for _ in rows],
                "seed": list(rows),
                "source_id": [f"{prefix}img{i:03d}" for i in rows],
            },
            path,
        )
        paths.append(path)
    return paths


def fast_settings(base_url: str, **changes: object) -> CaptionSettings:
    """Settings scaled down for tests: tiny images, short timeouts and backoff."""
    values: dict[str, object] = {
        "base_url": base_url,
        "image_size": 24,
        "concurrency": 4,
        "timeout_s": 1.5,  # well above a loaded machine's latency: only injected faults time out
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
        "batch_poll_s": 0.02,
        "max_failure_fraction": 1.0,
    }
    values.update(changes)
    return CaptionSettings(**values)


def keys_by_id(shards: list[Path], settings: CaptionSettings) -> dict[str, str]:
    """image id -> the fake server's key for it (hash of the data URL actually sent)."""
    return {
        item.image_id: image_key(image_data_url(item.png, settings)) for item in iter_images(shards)
    }


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """A unique key (no 'sk-' prefix, so only the env-based redaction can hide it)."""
    key = f"marker-{uuid.uuid4().hex}"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    return key


def cli_env(api_key: str) -> dict[str, str]:
    env = dict(os.environ)
    env["OPENAI_API_KEY"] = api_key
    env["PYTHONPATH"] = str(ROOT / "workflow" / "lib")
    return env


def cli_args(shards: list[Path], out: Path, base_url: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(SCRIPT),
        "--shards",
        *map(str, shards),
        "--out",
        str(out / "captions.parquet"),
        "--failures",
        str(out / "failures.csv"),
        "--cache-dir",
        str(out / "cache"),
        "--base-url",
        base_url,
        "--image-size",
        "24",
        "--max-failure-fraction",
        "1",
        "--no-progress",
        "--set",
        "backoff_base_s=0.01",
        "--set",
        "backoff_max_s=0.05",
        *extra,
    ]


def wait_for(condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def load_cli_module():
    spec = importlib.util.spec_from_file_location("caption_images_cli", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- pure pieces ----------------------------------------------------------------------------


def completion(content=None, refusal=None, finish="stop") -> dict:
    message = {"role": "assistant", "content": content, "refusal": refusal}
    return {
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7},
    }


def test_parse_answer_accepts_captions_and_names_every_bad_answer():
    good = parse_answer(completion("  A red barn.\nCows graze in front.  "))
    assert (good.caption, good.reason, good.input_tokens, good.output_tokens) == (
        "A red barn. Cows graze in front.",
        None,
        11,
        7,
    )
    reasons = [
        parse_answer(body).reason
        for body in (
            completion(None, refusal="I can't assist with that."),
            completion("I'm sorry, but I can't help with that."),
            completion("Sorry, I cannot describe this image."),
            completion("I\u2019m unable to help with this request."),
            completion("   "),
            completion(None),
            completion("A cat.", finish="content_filter"),
            {"id": "x", "object": "chat.completion"},
            {"choices": "nope"},
            ["not", "an", "object"],
        )
    ]
    assert reasons == [
        "refusal",
        "refusal",
        "refusal",
        "refusal",
        "empty",
        "empty",
        "refusal",
        "malformed",
        "malformed",
        "malformed",
    ]
    # Captions that merely mention sorrow or inability are not refusals.
    assert parse_answer(completion("A sorry-looking dog sits in the rain.")).reason is None
    assert parse_answer(completion("I see a tabby cat on a sofa.")).reason is None


def test_journal_drops_a_torn_tail_and_appends_cleanly(tmp_path):
    path = tmp_path / "journal.jsonl"
    record = {"image_id": "a", "model": "m", "instruction_hash": "h", "caption": "x"}
    with CaptionJournal(path) as journal:
        journal.append(record)
        journal.append({**record, "image_id": "b"})
    with open(path, "ab") as fh:  # a writer killed half way through a line
        fh.write(b'{"image_id": "c", "model": "m", "instru')
    assert sorted(k[0] for k in CaptionJournal(path).load()) == ["a", "b"]
    with CaptionJournal(path) as journal:
        journal.append({**record, "image_id": "d"})
    loaded = CaptionJournal(path).load()
    assert sorted(k[0] for k in loaded) == ["a", "b", "d"]
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_backoff_grows_with_failures_and_never_undercuts_retry_after():
    import random

    rng = random.Random(0)
    delays = [backoff_delay(n, 1.0, 8.0, rng=rng) for n in (1, 2, 3, 4, 5, 6)]
    for n, delay in zip((1, 2, 3, 4, 5, 6), delays):
        ceiling = min(8.0, 2.0 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert backoff_delay(1, 0.01, 1.0, retry_after_s=3.0, rng=rng) >= 3.0


def test_settings_reject_typos_and_key_only_on_what_the_model_sees():
    with pytest.raises(CaptionError, match="max_retrys"):
        CaptionSettings.from_mapping({"max_retrys": 3})
    with pytest.raises(CaptionError, match="mode"):
        CaptionSettings(mode="sometimes")
    base = CaptionSettings()
    assert base.instruction_text == INSTRUCTION_PRESETS["paper"]
    same = CaptionSettings.from_mapping({"concurrency": 2, "max_retries": 9, "mode": "batch"})
    assert same.instruction_hash == base.instruction_hash
    assert CaptionSettings(image_size=512).instruction_hash != base.instruction_hash
    assert CaptionSettings(instruction="official").instruction_hash != base.instruction_hash
    custom = CaptionSettings.from_mapping({"prices": {"online_input_per_1m": 1.5}})
    assert custom.prices.online_input_per_1m == 1.5
    assert custom.prices.batch_input_per_1m == Prices().batch_input_per_1m


def test_request_body_sends_instruction_then_resized_jpeg():
    png = encode_png(np.zeros((375, 500, 3), dtype=np.uint8))
    settings = CaptionSettings(instruction="Describe it.", max_output_tokens=None)
    body = chat_request_body(image_data_url(png, settings), settings)
    content = body["messages"][0]["content"]
    assert [part["type"] for part in content] == ["text", "image_url"]
    assert content[0]["text"] == "Describe it."
    assert "max_completion_tokens" not in body and body["model"] == "gpt-4.1-nano"
    url = content[1]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    import base64
    import io

    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as im:
        assert im.size == (341, 256)  # short side 256, long side truncated like the authors'


def test_split_requests_respects_count_and_byte_limits():
    lines = [(f"id{i}", b"x" * size + b"\n") for i, size in enumerate([10, 30, 5, 60, 200, 8, 8])]
    chunks = list(split_requests(lines, max_requests=3, max_bytes=64))
    assert [cid for chunk in chunks for cid, _ in chunk] == [cid for cid, _ in lines]
    for chunk in chunks:
        assert len(chunk) <= 3
        assert sum(len(line) for _, line in chunk) <= 64 or len(chunk) == 1
    assert [len(chunk) for chunk in chunks] == [3, 1, 1, 2]  # 48 B | 61 B | 201 B alone | 18 B


def test_redact_removes_the_key_and_key_shaped_strings(api_key):
    text = f"Incorrect API key provided: {api_key}; also sk-abcdefghijklmnop"
    cleaned = redact(text)
    assert api_key not in cleaned and "sk-abcdefghijklmnop" not in cleaned


# -- cost -------------------------------------------------------------------------------------


def test_image_token_rules_match_openai_examples():
    assert patch_count(1024, 1024) == 1024
    assert patch_count(1800, 2400) == 1452  # downscaled to fit 1536 patches
    assert image_tokens(341, 256, "gpt-4.1-nano") == 217  # 11 x 8 patches x 2.46
    assert image_tokens(341, 256, "gpt-4.1-nano-2025-04-14") == 217
    assert image_tokens(341, 256, "gpt-4.1-mini") == 143  # 88 x 1.62
    assert image_tokens(1024, 1024, "gpt-4o") == 765
    assert image_tokens(1024, 1024, "gpt-4o", detail="low") == 85
    with pytest.raises(ValueError, match="no image token rule"):
        image_tokens(10, 10, "mystery-model")


def test_dry_run_cost_for_a_known_case(tmp_path, capsys):
    """Two ImageNet-shaped images (500x375, 375x500): 217 image tokens each after resize."""
    images = [np.zeros((375, 500, 3), np.uint8), np.zeros((500, 375, 3), np.uint8)]
    shard = tmp_path / "s.parquet"
    write_shard(
        {
            "image": [encode_png(a) for a in images],
            "label": [0, 1],
            "class_id": ["n01", "n02"],
            "prompt": ["", ""],
            "seed": [0, 1],
            "source_id": ["a", "b"],
        },
        shard,
    )
    settings = CaptionSettings(
        instruction="x" * 40,  # 10 text tokens + 7 framing tokens
        output_tokens_mean=50,
        prices=Prices(1.0, 2.0, 0.5, 1.0, "test"),
    )
    estimate = dry_run([shard], settings)
    assert estimate.n_requests == 2
    assert estimate.image_tokens_per_request == 217
    assert estimate.text_tokens_per_request == 17
    assert estimate.input_tokens == 2 * (217 + 17)
    assert estimate.output_tokens == 100
    assert estimate.online_usd == pytest.approx((468 * 1.0 + 100 * 2.0) / 1e6)
    assert estimate.batch_usd == pytest.approx((468 * 0.5 + 100 * 1.0) / 1e6)

    # The CLI prints the same numbers as JSON; cached images are not counted again.
    cache = tmp_path / "cache"
    with CaptionJournal(cache / "journal.jsonl") as journal:
        journal.append(
            {
                "image_id": "a",
                "model": settings.model,
                "instruction_hash": settings.instruction_hash,
                "caption": "cached",
            }
        )
    cli = load_cli_module()
    argv = ["--shards", str(shard), "--cache-dir", str(cache), "--dry-run"]
    argv += ["--instruction", "x" * 40, "--output-tokens-mean", "50"]
    argv += ["--set", "prices={online_input_per_1m: 1, online_output_per_1m: 2}"]
    assert cli.main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["n_requests"], printed["n_cached"]) == (1, 1)
    assert printed["input_tokens"] == 234 and printed["output_tokens"] == 50
    assert printed["online_usd"] == pytest.approx((234 * 1 + 50 * 2) / 1e6)
    assert printed["batch_usd"] == pytest.approx((234 * 0.05 + 50 * 0.20) / 1e6)


# -- end to end against the fake server -------------------------------------------------------

FAULTY = FaultPlan(
    seed=3, fault_rate=0.7, poison_rate=0.15, retry_after_s=0.15, timeout_sleep_s=1.8
)


def run_mode(tmp_path: Path, shards: list[Path], api_key: str, mode: str, **changes):
    out = tmp_path / mode
    with FakeOpenAIServer(api_key, FaultPlan(**vars(FAULTY))) as server:
        settings = fast_settings(server.base_url, mode=mode, **changes)
        result = caption_images(
            shards,
            out / "captions.parquet",
            out / "failures.csv",
            out / "cache",
            settings,
            progress=False,
        )
    table = read_captions(out / "captions.parquet")
    failures = pd.read_csv(out / "failures.csv", dtype={"image_id": str})
    return server, settings, result, table, failures, out


def test_online_every_image_gets_one_caption_or_one_failure_row(tmp_path, api_key):
    shards = make_shards(tmp_path, 24)
    server, settings, result, table, failures, out = run_mode(tmp_path, shards, api_key, "online")
    ids = [f"img{i:03d}" for i in range(24)]
    keys = keys_by_id(shards, settings)
    poisoned = {i for i in ids if server.is_poisoned(keys[i])}
    assert 0 < len(poisoned) < len(ids)

    assert table["image_id"].is_unique and failures["image_id"].is_unique
    assert set(table["image_id"]) | set(failures["image_id"]) == set(ids)
    assert set(table["image_id"]).isdisjoint(failures["image_id"])
    assert set(failures["image_id"]) == poisoned
    assert set(failures["reason"]) == {"refusal"}
    assert (failures["attempts"] == settings.refusal_retries + 1).all()
    for row in table.itertuples():
        assert row.caption == caption_for(keys[row.image_id])
        assert row.class_id == CLASSES[int(row.image_id[3:]) % 3]
        assert (row.model, row.mode) == ("gpt-4.1-nano", "online")
    assert list(table["image_id"]) == [i for i in ids if i not in poisoned]  # shard order
    assert result.n_new == len(ids) - len(poisoned) and result.n_failed == len(poisoned)

    # Every kind of fault really happened, and 429s were answered no sooner than retry-after.
    for fault in ("429", "500", "timeout", "malformed", "empty", "refusal", "refusal_text"):
        assert server.faults[fault] > 0, fault
    assert server.retry_after_violations == []
    assert server.retry_after_honoured > 0

    # A rerun asks only for what is missing: the failed images, nothing else.
    with FakeOpenAIServer(api_key, FaultPlan(**vars(FAULTY))) as again:
        rerun = caption_images(
            shards,
            out / "captions.parquet",
            out / "failures.csv",
            out / "cache",
            settings.replace(base_url=again.base_url),
            progress=False,
        )
    assert set(again.requests) == {keys[i] for i in poisoned}
    assert rerun.n_cached == len(ids) - len(poisoned)
    assert read_captions(out / "captions.parquet").equals(table)


def test_batch_mode_reaches_the_same_table_as_online(tmp_path, api_key):
    shards = make_shards(tmp_path, 24)
    online = run_mode(tmp_path, shards, api_key, "online")
    batch = run_mode(
        tmp_path,
        shards,
        api_key,
        "batch",
        batch_max_requests=5,
        batch_max_bytes=16000,
        batch_max_open=2,
    )
    server = batch[0]
    columns = ["image_id", "class_id", "model", "instruction_hash", "caption"]
    columns += ["input_tokens", "output_tokens"]
    pd.testing.assert_frame_equal(online[3][columns], batch[3][columns])
    assert set(batch[3]["mode"]) == {"batch"}
    assert online[4][["image_id", "reason", "attempts"]].equals(
        batch[4][["image_id", "reason", "attempts"]]
    )
    # Batches were split within both limits, and retried images went out in later rounds.
    inputs = [f["data"] for f in server.files.values() if f["purpose"] == "batch"]
    assert len(inputs) == server.batches_created > 24 // 5
    for data in inputs:
        assert len(data.splitlines()) <= 5 and len(data) <= 16000
    assert server.max_open_batches == 2  # never more batches in flight than allowed
    assert server.faults["timeout"] > 0 and server.faults["malformed"] > 0
    # The state file is gone once every batch is collected; the inputs were cleaned up.
    cache = batch[5] / "cache"
    assert not list(cache.glob("batch_state-*.json"))
    assert not list((cache / "batch_inputs").glob("*.jsonl"))


def test_batch_adopts_a_batch_created_just_before_a_kill(tmp_path, api_key):
    """State recorded a chunk as uploaded but the process died before saving the batch id."""
    shards = make_shards(tmp_path, 6, n_shards=1)
    with FakeOpenAIServer(api_key, FaultPlan(batch_polls=1)) as server:
        settings = fast_settings(server.base_url, mode="batch")
        items = list(iter_images(shards))
        blob = b"".join(
            batch_line(i.image_id, chat_request_body(image_data_url(i.png, settings), settings))
            for i in items
        )
        cache = tmp_path / "cache"
        input_path = cache / "batch_inputs" / "orphan.jsonl"
        input_path.parent.mkdir(parents=True)
        input_path.write_bytes(blob)
        file_id = server.store_file("orphan.jsonl", blob, "batch")
        import openai

        client = openai.OpenAI(base_url=server.base_url, max_retries=0)
        client.batches.create(
            input_file_id=file_id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata={"synth2real_chunk": "chunk-1"},
        )
        state = {
            "version": 1,
            "model": settings.model,
            "instruction_hash": settings.instruction_hash,
            "attempts": {},
            "batches": [
                {
                    "chunk": "chunk-1",
                    "input_path": str(input_path),
                    "input_file_id": file_id,
                    "batch_id": None,
                    "ids": [i.image_id for i in items],
                    "collected": False,
                }
            ],
        }
        name = f"batch_state-{settings.model}-{settings.instruction_hash}.json"
        atomic_write_json(cache / name, state)
        result = caption_images(
            shards, tmp_path / "c.parquet", tmp_path / "f.csv", cache, settings, progress=False
        )
    assert server.batches_created == 1  # adopted, not submitted a second time
    assert result.n_new == 6 and result.n_failed == 0
    assert all(count == 1 for count in server.requests.values())


def test_sigkill_mid_run_loses_no_caption_and_asks_for_none_twice(tmp_path, api_key):
    shards = make_shards(tmp_path, 40)
    plan = FaultPlan(
        seed=5,
        fault_rate=0.3,
        poison_rate=0.1,
        delay_s=0.06,
        faults=("429", "500", "malformed", "empty", "refusal_text"),
        retry_after_s=0.05,
    )
    out = tmp_path / "run"
    journal_path = out / "cache" / "journal.jsonl"
    with FakeOpenAIServer(api_key, plan) as server:
        args = cli_args(shards, out, server.base_url, "--concurrency", "2", "--timeout-s", "5")
        proc = subprocess.Popen(
            args, env=cli_env(api_key), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )

        def journaled() -> int:
            return journal_path.read_bytes().count(b"\n") if journal_path.exists() else 0

        wait_for(lambda: journaled() >= 8 or proc.poll() is not None)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        before = {k[0]: r for k, r in CaptionJournal(journal_path).load().items()}
        settings = fast_settings(server.base_url, image_size=24)
        keys = keys_by_id(shards, settings)
        poisoned = {i for i, k in keys.items() if server.is_poisoned(k)}
        assert 8 <= len(before) < len(keys) - len(poisoned)  # really killed part-way
        asked_before_rerun = Counter(server.requests)

        rerun = subprocess.run(args, env=cli_env(api_key), capture_output=True, timeout=60)
        assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]

    for image_id in before:  # nothing journaled before the kill was asked for again
        assert server.requests[keys[image_id]] == asked_before_rerun[keys[image_id]]
    table = read_captions(out / "captions.parquet").set_index("image_id")
    assert set(table.index) == set(keys) - poisoned
    for image_id, record in before.items():
        assert table.loc[image_id, "caption"] == record["caption"]
    for image_id in table.index:
        assert table.loc[image_id, "caption"] == caption_for(keys[image_id])
    failures = pd.read_csv(out / "failures.csv")
    assert set(failures["image_id"]) == poisoned
    # Only requests in flight at the kill can have been answered twice.
    assert sum(n > 1 for n in server.successes.values()) <= 2


def test_batch_polling_resumes_after_sigkill_without_resubmitting(tmp_path, api_key):
    shards = make_shards(tmp_path, 12, n_shards=1)
    plan = FaultPlan(batch_polls=10**9)  # batches stay in progress until we say so
    out = tmp_path / "run"
    with FakeOpenAIServer(api_key, plan) as server:
        args = cli_args(shards, out, server.base_url, "--mode", "batch")
        args += ["--set", "batch_max_requests=4", "--set", "batch_poll_s=0.05"]
        proc = subprocess.Popen(
            args, env=cli_env(api_key), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        settings = fast_settings(server.base_url)
        state_path = out / "cache" / f"batch_state-gpt-4.1-nano-{settings.instruction_hash}.json"

        def all_submitted() -> bool:
            if proc.poll() is not None:
                raise AssertionError(proc.communicate()[1].decode()[-2000:])
            if not state_path.exists():
                return False
            batches = json.loads(state_path.read_text())["batches"]
            return len(batches) == 3 and all(b["batch_id"] for b in batches)

        wait_for(all_submitted)
        wait_for(lambda: all(b["polls"] >= 2 for b in server.batches.values()))
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        assert server.batches_created == 3 and not server.requests  # nothing answered yet

        server.plan.batch_polls = 1
        rerun = subprocess.run(args, env=cli_env(api_key), capture_output=True, timeout=60)
        assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
    assert server.batches_created == 3  # polling resumed; nothing submitted twice
    assert len(server.requests) == 12 and set(server.requests.values()) == {1}
    table = read_captions(out / "captions.parquet")
    assert len(table) == 12 and set(table["mode"]) == {"batch"}
    assert not state_path.exists()


def write_tiny_clip_tokenizer(directory: Path) -> Path:
    """A character-level CLIP BPE vocabulary: every non-space character is one token."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for code in range(33, 127):
        vocab.setdefault(chr(code), len(vocab))
        vocab.setdefault(chr(code) + "</w>", len(vocab))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    return directory


def test_api_key_never_reaches_outputs_logs_or_console(tmp_path, api_key):
    shards = make_shards(tmp_path, 12)
    classes = tmp_path / "classes.tsv"
    classes.write_text("wnid\tname\nn01\ttench\nn02\tgoldfish\nn03\tshark\n")
    tokenizer = write_tiny_clip_tokenizer(tmp_path / "clip")
    plan = FaultPlan(seed=1, fault_rate=0.5, poison_rate=0.2, timeout_sleep_s=1.8)
    out = tmp_path / "run"
    with FakeOpenAIServer(api_key, plan) as server:
        args = cli_args(shards, out, server.base_url, "--timeout-s", "1.5")
        args += ["--classes", str(classes), "--clip-tokenizer", str(tokenizer)]
        args += ["--prompts-out", str(out / "prompts.parquet")]
        args += ["--prompt-stats-out", str(out / "prompt_stats.tsv")]
        args += ["--log", str(out / "caption.log")]
        ok = subprocess.run(args, env=cli_env(api_key), capture_output=True, timeout=60)
        assert ok.returncode == 0, ok.stderr.decode()[-2000:]
        assert server.auth_failures == 0 and sum(server.successes.values()) > 0
    # A server that rejects the key and echoes it back (as the real API does).
    with FakeOpenAIServer("another-key", plan) as wrong:
        bad_out = tmp_path / "rejected"
        bad_args = cli_args(shards, bad_out, wrong.base_url)
        rejected = subprocess.run(bad_args, env=cli_env(api_key), capture_output=True, timeout=60)
        assert rejected.returncode == 1 and wrong.auth_failures > 0
        assert b"refused the credentials" in rejected.stderr
    outputs = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert (out / "caption.log").exists() and (out / "prompt_stats.tsv").exists()
    assert len(pd.read_csv(out / "failures.csv")) > 0  # failure details were written too
    for stream in (ok.stdout, ok.stderr, rejected.stdout, rejected.stderr):
        assert api_key.encode() not in stream
    for path in outputs:
        assert api_key.encode() not in path.read_bytes(), path


# -- prompts ----------------------------------------------------------------------------------


class CharTokenizer:
    """One token per character, whitespace included, plus start and end: unlike CLIP's own
    tokenizer it does not fold whitespace, so prompts that differ only there count apart."""

    def __call__(self, texts, truncation=False):
        return {"input_ids": [[0] + [1] * len(t) + [2] for t in texts]}


def test_token_statistics_count_exactly_the_prompt_table_prompts(tmp_path, monkeypatch):
    """The 77-token statistics are computed on the prompts the generators get (the prompt
    table's), not on a second rendering of the template that differs on whitespace."""
    classes = tmp_path / "classes.tsv"
    classes.write_text("wnid\tname\nn01\ttench\nn02\tgoldfish\n")
    captions = pa.Table.from_pylist(
        [
            {"image_id": "b", "class_id": "n01", "caption": "  A fish  in a\nnet. "},
            {"image_id": "a", "class_id": "n01", "caption": "A tench."},
            {"image_id": "c", "class_id": "n02", "caption": "An orange fish\n\nin a bowl."},
            {"image_id": "d", "class_id": "n09", "caption": "Not a class of the table."},
        ]
    )
    pq.write_table(captions, tmp_path / "captions.parquet")
    cli = load_cli_module()
    monkeypatch.setattr(cli, "load_clip_tokenizer", lambda path: CharTokenizer())
    args = cli.build_parser().parse_args(
        ["--shards", "x", "--cache-dir", str(tmp_path), "--out", str(tmp_path / "captions.parquet")]
        + ["--classes", str(classes), "--clip-tokenizer", str(tmp_path)]
        + ["--prompts-out", str(tmp_path / "prompts.parquet")]
        + ["--prompt-stats-out", str(tmp_path / "stats.tsv")]
    )
    cli.write_prompt_outputs(args)

    table = caption_prompts(
        [{"class_id": "n01", "class_name": "tench"}, {"class_id": "n02", "class_name": "goldfish"}],
        captions,
        "any-caption",
        "train",
        0,
    ).to_pandas()
    assert table.prompt[1] == "tench, A fish  in a\nnet."  # inner whitespace as captioned
    written = pq.read_table(tmp_path / "prompts.parquet").to_pandas()
    assert list(written.columns) == ["image_id", "class_id", "prompt"]
    assert list(written.prompt) == list(table.prompt)
    assert list(written.image_id + "/0") == list(table.source_id)
    stats = pd.read_csv(tmp_path / "stats.tsv", sep="\t").set_index("class_id")
    lengths = table.prompt.str.len() + 2
    for class_id, group in lengths.groupby(table.class_id):
        assert stats.loc[class_id, "n_prompts"] == len(group)
        assert stats.loc[class_id, "max_tokens"] == group.max()
        assert stats.loc[class_id, "mean_tokens"] == pytest.approx(group.mean())
    assert stats.loc["__all__", "n_prompts"] == len(table) == 3
    assert stats.loc["n02", "class_name"] == "goldfish"


def test_prompt_stats_count_prompts_over_77_clip_tokens(tmp_path):
    tokenizer = load_clip_tokenizer(write_tiny_clip_tokenizer(tmp_path / "clip"))
    # "cat," is 4 tokens, plus start and end: a caption of k characters gives k + 6 tokens.
    lengths = {"n01": [10, 71, 72, 80], "n02": [5, 5]}
    rows = [(c, "x" * k) for c, ks in lengths.items() for k in ks]
    prompts = pd.DataFrame(
        {
            "class_id": [c for c, _ in rows],
            "class_name": [{"n01": "cat", "n02": ""}[c] for c, _ in rows],
            "prompt": [f"cat, {text}" for _, text in rows],
        }
    )
    stats = prompt_token_stats(prompts, tokenizer).set_index("class_id")
    assert stats.loc["n01", "n_prompts"] == 4
    assert stats.loc["n01", "n_over"] == 2  # 78 and 86 tokens; 77 is still within
    assert stats.loc["n01", "frac_over"] == pytest.approx(0.5)
    assert stats.loc["n01", "max_tokens"] == 86 and stats.loc["n01", "class_name"] == "cat"
    assert stats.loc["n02", "n_over"] == 0
    assert stats.loc["__all__", "n_over"] == 2 and stats.loc["__all__", "n_prompts"] == 6
    assert stats.loc["__all__", "frac_over"] == pytest.approx(2 / 6)


def test_snakemake_job_maps_to_cli_arguments(tmp_path):
    class Named(dict):
        """Stands in for Snakemake's named lists (attribute access and .get)."""

        __getattr__ = dict.__getitem__

    class Log(list):
        pass

    job = type("Job", (), {})()
    job.input = Named(
        shards=["a.parquet", "b.parquet"], test_shards=["t.parquet"], classes="config/classes.tsv"
    )
    job.output = Named(
        captions="c.parquet", test_captions="ct.parquet", failures="f.csv", prompt_stats="s.tsv"
    )
    # result settings come from params (the rerun trigger), runtime knobs from the config;
    # held_out (which images) is the job's inputs, and never a caption setting
    job.params = Named(cache_dir="cache", captions={"model": "m2"})
    job.config = {
        "captions": {"model": "m2", "mode": "batch", "prices": {"as_of": "x"}, "held_out": True}
    }
    job.log = Log(["run.log"])
    cli = load_cli_module()
    args = cli.build_parser().parse_args(cli.snakemake_argv(job))
    assert args.shards == ["a.parquet", "b.parquet"] and args.cache_dir == "cache"
    assert (args.test_shards, args.test_out) == (["t.parquet"], "ct.parquet")
    assert (args.val_shards, args.val_out) == ([], None)
    assert cli.output_tables(args) == {"c.parquet": args.shards, "ct.parquet": ["t.parquet"]}
    assert (args.out, args.failures, args.prompt_stats_out) == ("c.parquet", "f.csv", "s.tsv")
    assert args.classes == "config/classes.tsv" and args.prompts_out is None
    assert args.log == "run.log" and args.no_progress
    settings = cli.load_settings(args)
    assert settings.model == "m2"
    assert settings.mode == "batch" and settings.prices.as_of == "x"


# -- held-out captions and the table3 preset, through the captions and prompts code ----------

#: Real images per split (4, 2, 2 per class of CLASSES) and synthetic images per class.
SPLIT_IMAGES = {"train": 12, "val": 6, "test": 6}
SYNTH_PER_CLASS = {"train": 4, "val": 2, "test": 2}
CLASS_NAMES = {"n01": "tench", "n02": "goldfish", "n03": "shark"}


def paper_grid(held_out: bool) -> Grid:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["captions"]["held_out"] = held_out
    return Grid(config, root=ROOT)


def caption_then_plan(tmp_path: Path, api_key: str, held_out: bool):
    """What the workflow does for a caption dataset: the captions job on the real splits the
    grid captions (its CLI, as the Snakemake job calls it), then each split's prompt table
    from the captions of its source split. Returns (plans, image ids per split, captions by
    image id as the fake server wrote them, the server)."""
    grid = paper_grid(held_out)
    shards = {
        split: make_shards(tmp_path / "real" / split, n, seed=k, prefix=f"{split}/")
        for k, (split, n) in enumerate(SPLIT_IMAGES.items())
    }
    paths = RunPaths(str(tmp_path / "run"))
    argv = ["--shards", *map(str, shards["train"]), "--out", paths.captions()]
    for split in grid.captioned_splits():
        if split != "train":
            argv += [f"--{split}-shards", *map(str, shards[split])]
            argv += [f"--{split}-out", paths.captions(split)]
    argv += ["--failures", paths.caption_failures(), "--cache-dir", str(tmp_path / "cache")]
    argv += ["--image-size", "24", "--no-progress"]
    with FakeOpenAIServer(api_key) as server:
        assert load_cli_module().main([*argv, "--base-url", server.base_url]) == 0
    settings = fast_settings(None)  # the image encoding sent (the server keys on it)
    ids = {s: [i.image_id for i in iter_images(shards[s])] for s in SPLIT_IMAGES}
    captions = {
        image_id: caption_for(key)
        for split in SPLIT_IMAGES
        for image_id, key in keys_by_id(shards[split], settings).items()
    }
    classes = tmp_path / "classes.tsv"
    classes.write_text("wnid\tname\n" + "".join(f"{c}\t{n}\n" for c, n in CLASS_NAMES.items()))
    config = {"data": {"source": "imagenet", "classes": str(classes)}, "seed": 0}
    plans = {
        split: build_prompt_table(
            config,
            "g-caption",
            split,
            "caption",
            SYNTH_PER_CLASS[split],
            captions=paths.captions(grid.caption_source(split)),
        ).to_pandas()
        for split in SPLIT_IMAGES
    }
    return plans, ids, captions, server


def expected_plan(split: str, source_ids: list[str], captions: dict[str, str]) -> pd.DataFrame:
    """The plan written out by hand: per class (table order), its first images in id order,
    prompt "<class name>, <caption>", one row seed each."""
    rows = []
    for class_id, name in CLASS_NAMES.items():
        of_class = sorted(i for i in source_ids if CLASSES[int(i[-3:]) % 3] == class_id)
        for image_id in of_class[: SYNTH_PER_CLASS[split]]:
            rows.append((class_id, f"{name}, {captions[image_id]}", f"{image_id}/0"))
    frame = pd.DataFrame(rows, columns=["class_id", "prompt", "source_id"])
    frame["seed"] = [derive_seed(0, "g-caption", split, r) for r in range(len(frame))]
    return frame


def test_held_out_val_and_test_prompts_describe_their_own_real_images(tmp_path, api_key):
    plans, ids, captions, server = caption_then_plan(tmp_path, api_key, held_out=True)
    # the captions job captioned every real image of the three splits, each once
    assert sum(server.successes.values()) == sum(SPLIT_IMAGES.values()) == 24
    sources = {s: {x.rsplit("/", 1)[0] for x in plans[s].source_id} for s in plans}
    for split in ("val", "test"):
        assert sources[split] <= set(ids[split]) and not sources[split] & set(ids["train"])
        expected = expected_plan(split, ids[split], captions)
        assert plans[split][list(expected.columns)].equals(expected)
    assert not sources["val"] & sources["test"]
    assert not set(plans["val"].prompt) & set(plans["test"].prompt)
    assert plans["val"].prompt[0] == f"tench, {captions['val/img000']}"  # val/img000 is n01's
    assert plans["train"][["prompt", "source_id"]].equals(
        expected_plan("train", ids["train"], captions)[["prompt", "source_id"]]
    )


def test_official_setting_reproduces_the_train_caption_plan(tmp_path, api_key):
    """held_out: false is the old plan: only train images are captioned, and val and test
    both take the first train captions of each class (with their own seeds)."""
    plans, ids, captions, server = caption_then_plan(tmp_path, api_key, held_out=False)
    assert sum(server.successes.values()) == SPLIT_IMAGES["train"]  # val/test not captioned
    for split in ("val", "test"):
        expected = expected_plan(split, ids["train"], captions)
        assert plans[split][list(expected.columns)].equals(expected)
    assert list(plans["val"].prompt) == list(plans["test"].prompt)
    assert not set(plans["val"].seed) & set(plans["test"].seed)
    assert plans["val"].source_id[0] == "train/img000/0"


def test_paper_config_sends_the_table3_instruction_and_a_new_preset_recaptions(
    tmp_path, api_key, capsys
):
    """The paper config's captions section (held_out dropped, mode and image size overridden
    for the test) sends the table3 text; another preset asks again for every image, a runtime
    knob for none."""
    shards = make_shards(tmp_path, 6)
    cli = load_cli_module()
    argv = ["--config", str(ROOT / "config" / "config.yaml"), "--mode", "online"]
    argv += ["--shards", *map(str, shards), "--cache-dir", str(tmp_path / "cache")]
    argv += ["--failures", str(tmp_path / "f.csv"), "--image-size", "24", "--no-progress"]
    table3 = INSTRUCTION_PRESETS["table3"]
    with FakeOpenAIServer(api_key) as server:
        run = [*argv, "--base-url", server.base_url]
        assert cli.main([*run, "--out", str(tmp_path / "a.parquet")]) == 0
        assert server.instructions == Counter({table3: 6})
        # the job logs what it is about to spend before sending anything
        assert "estimate (table3 instruction): 6 request(s)" in capsys.readouterr().err
        assert cli.main([*run, "--out", str(tmp_path / "b.parquet"), "--concurrency", "2"]) == 0
        assert server.instructions == Counter({table3: 6})  # a runtime knob: all cached
        assert "estimate (table3 instruction): 0 request(s)" in capsys.readouterr().err
        assert cli.main([*run, "--out", str(tmp_path / "c.parquet"), "--instruction", "paper"]) == 0
        assert server.instructions == Counter({table3: 6, INSTRUCTION_PRESETS["paper"]: 6})
    for part in ("two to three sentence", "background", "foreground", "objects", "camera angle"):
        assert part in table3
    meta = pq.read_schema(tmp_path / "a.parquet").metadata[b"synth2real.captions.runner"]
    assert json.loads(meta)["instruction"] == table3
    assert len(read_captions(tmp_path / "b.parquet")) == 6

    # The dry run of the paper config, before any data: 120k square 256 px images.
    capsys.readouterr()
    dry = ["--config", str(ROOT / "config" / "config.yaml"), "--cache-dir", str(tmp_path)]
    assert cli.main([*dry, "--dry-run", "--images", "120000", "--image-px", "256"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["output_tokens_per_request"] == 97.0  # Table 3's mean caption length
    assert printed["text_tokens_per_request"] == math.ceil(len(table3) / 4) + 7
    assert printed["image_tokens_per_request"] == 158  # 8 x 8 patches x 2.46
    per_request_usd = (158 + printed["text_tokens_per_request"]) * 0.05 + 97 * 0.20
    assert printed["batch_usd"] == pytest.approx(120_000 * per_request_usd / 1e6, rel=1e-6)


# -- the workflow's dry run shows the captions cost ----------------------------------------

ESTIMATE_LINE = re.compile(
    r"estimate \((\S+) instruction\): (\d+) request\(s\), (\d+) input \+ (\d+) output tokens: "
    r"\$([\d.]+) online, \$([\d.]+) batch"
)


def snakemake_parse(workdir: Path, configfile: Path, *args: str) -> subprocess.CompletedProcess:
    """Snakemake on the repository's Snakefile in ``workdir`` (config/ linked in, so the
    paper config's relative class table resolves)."""
    workdir.mkdir(exist_ok=True)
    if not (workdir / "config").exists():
        (workdir / "config").symlink_to(ROOT / "config")
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", *args, "--snakefile", str(ROOT / "Snakefile"),
         "--directory", str(workdir), "--configfile", str(configfile)],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def test_paper_dry_run_shows_the_captioner_dry_runs_cost(tmp_path, capsys):
    """``snakemake -n`` of the paper config, before any data exists, prints the captions job's
    estimate once, with the numbers of the captioner's own dry run for the same images."""
    proc = snakemake_parse(tmp_path, ROOT / "config" / "config.yaml", "-n", "--cores", "1")
    assert re.search(r"^rule captions:$", proc.stdout, flags=re.M), "captions not in the plan"
    assert len(ESTIMATE_LINE.findall(proc.stderr)) == 1, proc.stderr
    split_line = "120000 real image(s) to caption (train 100000, val 10000, test 10000; 256x256 px)"
    assert split_line in proc.stderr
    assert "with gpt-4.1-nano, batch mode, prices as of 2025-04-14" in proc.stderr
    preset, requests, tokens_in, tokens_out, online, batch = ESTIMATE_LINE.search(
        proc.stderr
    ).groups()

    cli = load_cli_module()
    capsys.readouterr()
    dry = ["--config", str(ROOT / "config" / "config.yaml"), "--cache-dir", str(tmp_path)]
    assert cli.main([*dry, "--dry-run", "--images", "120000", "--image-px", "256"]) == 0
    script = json.loads(capsys.readouterr().out)
    assert preset == "table3"
    assert (int(requests), int(tokens_in), int(tokens_out)) == (
        script["n_requests"],
        script["input_tokens"],
        script["output_tokens"],
    )
    assert (online, batch) == (f"{script['online_usd']:.2f}", f"{script['batch_usd']:.2f}")
    assert (online, batch) == ("7.16", "3.58")  # the README's figures


def test_dry_run_shows_no_cost_without_openai_captions_to_make(tmp_path):
    """No estimate where nothing is sent: a grid without caption prompts (the demo), digits
    (captioned locally), caption tables already there, and a cluster job's re-parse. The
    estimate is printed while the Snakefile is parsed, so listing the rules (a parse without
    the DAG) shows what a dry run would."""
    demo = snakemake_parse(tmp_path / "demo", ROOT / "config" / "demo.yaml", "-n", "--cores", "1")
    assert "estimate (" not in demo.stderr
    config = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    config.update(prompt_types=["classname", "caption"], captions={"held_out": True})
    (tmp_path / "digits.yaml").write_text(yaml.safe_dump(config))
    digits = snakemake_parse(tmp_path / "digits", tmp_path / "digits.yaml", "--list-rules")
    assert "estimate (" not in digits.stderr

    paper, work = ROOT / "config" / "config.yaml", tmp_path / "paper"
    assert "estimate (" not in snakemake_parse(work, paper, "-l", "--mode", "remote").stderr
    tables = work / "results" / "paper" / "captions"
    tables.mkdir(parents=True)
    (tables / "captions.parquet").touch()  # train captioned; val and test still to do
    stderr = snakemake_parse(work, paper, "-l").stderr
    assert "20000 real image(s) to caption (val 10000, test 10000; 256x256 px)" in stderr
    [line] = ESTIMATE_LINE.findall(stderr)
    assert line[1] == "20000"
    (tables / "captions-val.parquet").touch()
    (tables / "captions-test.parquet").touch()
    assert "estimate (" not in snakemake_parse(work, paper, "-l").stderr

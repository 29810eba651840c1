"""A local Hugging Face hub on 127.0.0.1, for the tests and the rehearsal.

It speaks the part of the hub's HTTP API that ``huggingface_hub.snapshot_download`` (2.x) and
``HfApi.model_info`` use, as read in the installed client:

* ``GET /api/models/{repo}[/revision/{rev}]``: repo info (``id``, ``sha`` = the commit,
  ``siblings``, ``gated``);
* ``GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=``: the file listing (path, size,
  git blob oid, ``lfs`` with sha256 for weight files);
* ``HEAD|GET /{repo}/resolve/{rev}/{path}``: a file, with ``X-Repo-Commit`` and ``ETag`` (the
  git blob oid). Weight files are LFS, as on the hub: ``302`` to a CDN on another port with
  ``X-Linked-Etag`` (sha256) and ``X-Linked-Size``, so the client reads the metadata from the
  redirect and fetches the bytes from the CDN without sending its token there;
* errors as the hub sends them (``X-Error-Code``): 404 ``RepoNotFound``, ``RevisionNotFound``,
  ``EntryNotFound``; a gated repo answers ``resolve`` with 401 ``GatedRepo`` without a token
  and 403 with a token it has not granted; an unknown token is 401 everywhere.

A hub root is a folder: ``hub.json`` (``{"repos": {id: {"gated", "refs", "kind"}}, "tokens":
[accepted], "granted": [tokens let into gated repos]}``) and each repo's files at its one
commit under ``<root>/<repo id>/``. The commit is a hash of the files, so a rebuilt identical
repo has the same commit.

Command line (the rehearsal; run from the repository root)::

    python tests/hub_server.py --root DIR --build-config CONFIG   # tiny repos CONFIG loads
    python tests/hub_server.py --root DIR --port 8777             # serve DIR

In pytest: ``from hub_server import tiny_hub`` gives the session fixture ``tiny_hub``.
Secrets: tokens are compared, never logged; the request log holds method, path and whether
an ``Authorization`` header came, nothing else.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

HERE = Path(__file__).resolve().parent
#: Files the hub keeps in LFS (a pointer in git, the bytes on the CDN).
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx")
MAIN = "main"
#: The token the fixture hub accepts (and grants on its gated repo).
TEST_TOKEN = "hf_localhub_test_token_0123456789"


# ---------------------------------------------------------------------------------- repos
@dataclass(frozen=True)
class RepoFile:
    path: str
    size: int
    oid: str  # git blob sha1, the ETag of a regular file
    sha256: str | None  # LFS files only: their ETag and CDN address


@dataclass
class Repo:
    id: str
    folder: Path
    gated: bool = False
    granted: tuple[str, ...] = ()
    refs: tuple[str, ...] = ()
    files: dict[str, RepoFile] = field(default_factory=dict)
    commit: str = ""

    def scan(self) -> Repo:
        """Hash every file once: blob oids, LFS sha256, and the commit over all of them."""
        commit = hashlib.sha1(self.id.encode())
        for p in sorted(q for q in self.folder.rglob("*") if q.is_file()):
            rel = p.relative_to(self.folder).as_posix()
            data = p.read_bytes()
            oid = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            lfs = hashlib.sha256(data).hexdigest() if rel.endswith(LFS_SUFFIXES) else None
            self.files[rel] = RepoFile(rel, len(data), oid, lfs)
            commit.update(f"{rel}\0{oid}\n".encode())
        self.commit = commit.hexdigest()
        return self

    def resolves(self, rev: str) -> bool:
        return rev in (MAIN, self.commit, *self.refs)

    def folders(self) -> list[str]:
        dirs = {str(Path(f).parent.as_posix()) for f in self.files}
        out = set()
        for d in dirs - {"."}:
            parts = d.split("/")
            out.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        return sorted(out)


class Hub:
    """The repos of a hub root, scanned once at start."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        meta = json.loads((self.root / "hub.json").read_text())
        self.tokens = set(meta.get("tokens", []))
        self.repos: dict[str, Repo] = {}
        for rid, info in meta["repos"].items():
            repo = Repo(
                rid, self.root / rid, bool(info.get("gated")),
                tuple(meta.get("granted", [])), tuple(info.get("refs", [])),
            )  # fmt: skip
            self.repos[rid] = repo.scan()
        self.blobs = {
            f.sha256: (r.folder / f.path) for r in self.repos.values() for f in r.files.values()
        }
        self.blobs.pop(None, None)

    def split(self, parts: list[str]) -> tuple[str, list[str]]:
        """``(repo id, rest)`` of a path's segments: ids have one or two segments."""
        for n in (2, 1):
            if "/".join(parts[:n]) in self.repos:
                return "/".join(parts[:n]), parts[n:]
        return "/".join(parts[:2]), parts[2:]


# ---------------------------------------------------------------------------------- HTTP
_GATED_401 = (
    "Access to model {rid} is restricted. You must have access to it and be authenticated to "
    "access it. Please log in."
)
_GATED_403 = (
    "Access to model {rid} is restricted and you are not in the authorized list. Visit "
    "https://huggingface.co/{rid} to ask for access."
)


class HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HubHTTPServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._serve(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(body=False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if self.server.verbose:
            sys.stderr.write(f"hub: {self.command} {self.path} -> {args[1] if args else ''}\n")

    # ---------------------------------------------------------------- plumbing
    def _send(
        self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self._body:
            self.wfile.write(body)

    def _json(self, data: Any, headers: Mapping[str, str] | None = None) -> None:
        self._send(
            200, json.dumps(data).encode(), {"Content-Type": "application/json", **(headers or {})}
        )

    def _error(
        self, status: int, code: str | None, message: str, commit: str | None = None
    ) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        if commit:
            headers["X-Repo-Commit"] = commit
        self._send(status, json.dumps({"error": message}).encode(), headers)

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return auth.removeprefix("Bearer ").strip() or None

    def _serve(self, body: bool) -> None:
        self._body = body
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/")[1:] if p != ""]
        token = self._token()
        self.server.requests.append((self.command, url.path, token is not None))
        hub = self.server.hub
        if token is not None and token not in hub.tokens:
            return self._error(401, None, "Invalid credentials in Authorization header")
        if parts[:2] == ["api", "models"]:
            return self._api(parts[2:], parse_qs(url.query))
        if "resolve" in parts:
            return self._resolve(parts, token)
        self._error(404, None, "Not found")

    # ---------------------------------------------------------------- endpoints
    def _repo(self, rid: str, rev: str | None = None) -> Repo | None:
        repo = self.server.hub.repos.get(rid)
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository not found: {rid}")
        elif rev is not None and not repo.resolves(rev):
            self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
            return None
        return repo

    def _api(self, parts: list[str], query: dict[str, list[str]]) -> None:
        rid, rest = self.server.hub.split(parts)
        if not rest or rest[0] == "revision":
            rev = rest[1] if len(rest) > 1 else MAIN
            if (repo := self._repo(rid, rev)) is not None:
                self._json(_info(repo))
        elif rest[0] == "tree" and len(rest) > 1:
            if (repo := self._repo(rid, rest[1])) is not None:
                recursive = query.get("recursive", ["False"])[0].lower() == "true"
                self._json(_tree(repo, "/".join(rest[2:]), recursive))
        else:
            self._error(404, None, "Not found")

    def _resolve(self, parts: list[str], token: str | None) -> None:
        i = parts.index("resolve")
        rid, rev, path = "/".join(parts[:i]), parts[i + 1], "/".join(parts[i + 2 :])
        if (repo := self._repo(rid, rev)) is None:
            return
        if repo.gated and token not in repo.granted:
            if token is None:
                return self._error(401, "GatedRepo", _GATED_401.format(rid=rid))
            return self._error(403, "GatedRepo", _GATED_403.format(rid=rid))
        f = repo.files.get(path)
        if f is None:
            return self._error(404, "EntryNotFound", f"Entry not found: {path}", repo.commit)
        head = {"X-Repo-Commit": repo.commit, "Accept-Ranges": "bytes"}
        if f.sha256 is not None:
            location = f"{self.server.cdn_url}/blobs/{f.sha256}?filename={quote(Path(path).name)}"
            head |= {
                "Location": location,
                "ETag": f'"{f.oid}"',
                "X-Linked-Etag": f'"{f.sha256}"',
                "X-Linked-Size": str(f.size),
            }
            return self._send(302, b"", head)
        _send_file(self, repo.folder / path, {**head, "ETag": f'"{f.oid}"'})


class CdnHandler(HubHandler):
    """The LFS CDN: blobs by sha256, on its own origin (port), so tokens never reach it."""

    def _serve(self, body: bool) -> None:
        self._body = body
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        self.server.requests.append(
            (self.command, f"cdn:{url.path}", "Authorization" in self.headers)
        )
        blob = self.server.hub.blobs.get(parts[-1]) if parts[0] == "blobs" else None
        if blob is None:
            return self._error(404, None, "No such blob")
        _send_file(self, blob, {"ETag": f'"{parts[-1]}"', "Accept-Ranges": "bytes"})


def _send_file(handler: HubHandler, path: Path, headers: dict[str, str]) -> None:
    """A file, or its tail for ``Range: bytes=N-`` (how the client resumes a download)."""
    data = path.read_bytes()
    rng = handler.headers.get("Range", "")
    if rng.startswith("bytes=") and rng.endswith("-") and rng[6:-1].isdigit():
        start = int(rng[6:-1])
        headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        return handler._send(
            206, data[start:], {"Content-Type": "application/octet-stream", **headers}
        )
    handler._send(200, data, {"Content-Type": "application/octet-stream", **headers})


def _info(repo: Repo) -> dict[str, Any]:
    return {
        "_id": repo.commit[:24], "id": repo.id, "modelId": repo.id, "sha": repo.commit,
        "private": False, "gated": "manual" if repo.gated else False, "disabled": False,
        "lastModified": "2025-01-01T00:00:00.000Z", "tags": [], "downloads": 0, "likes": 0,
        "siblings": [{"rfilename": p} for p in sorted(repo.files)],
    }  # fmt: skip


def _tree(repo: Repo, under: str, recursive: bool) -> list[dict[str, Any]]:
    """Entries below ``under`` (all depths, or direct children), folders first as the hub does."""
    prefix = f"{under}/" if under else ""

    def wanted(p: str) -> bool:
        return p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :])

    out: list[dict[str, Any]] = [
        {"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d}
        for d in repo.folders()
        if wanted(d)
    ]
    for f in sorted(repo.files.values(), key=lambda f: f.path):
        if wanted(f.path):
            entry: dict[str, Any] = {"type": "file", "oid": f.oid, "size": f.size, "path": f.path}
            if f.sha256 is not None:
                entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": 134}
            out.append(entry)
    return out


class HubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, hub: Hub, port: int, handler: type, verbose: bool) -> None:
        super().__init__(("127.0.0.1", port), handler)
        self.hub, self.verbose = hub, verbose
        self.requests: list[tuple[str, str, bool]] = []
        self.cdn_url = ""


@dataclass
class RunningHub:
    """A served hub: its URL (``HF_ENDPOINT``), the CDN's, and every request it answered."""

    hub: Hub
    url: str
    cdn_url: str
    servers: tuple[HubHTTPServer, HubHTTPServer]
    token: str = TEST_TOKEN

    @property
    def requests(self) -> list[tuple[str, str, bool]]:
        """``(method, path, sent Authorization?)`` of every request in arrival order; the
        CDN's paths start with ``cdn:``."""
        return self.servers[0].requests

    def commit(self, repo_id: str) -> str:
        return self.hub.repos[repo_id].commit

    def close(self) -> None:
        for s in self.servers:
            s.shutdown()
            s.server_close()


def serve(root: str | Path, port: int = 0, cdn_port: int = 0, verbose: bool = False) -> RunningHub:
    """Serve hub root ``root`` on 127.0.0.1 (``port`` 0: any free port) in daemon threads."""
    hub = Hub(root)
    main = HubHTTPServer(hub, port, HubHandler, verbose)
    cdn = HubHTTPServer(hub, cdn_port, CdnHandler, verbose)
    main.cdn_url = f"http://127.0.0.1:{cdn.server_address[1]}"
    cdn.requests = main.requests  # one log (list.append is atomic)
    for s in (main, cdn):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    return RunningHub(hub, f"http://127.0.0.1:{main.server_address[1]}", main.cdn_url, (main, cdn))


# ---------------------------------------------------------------------------------- building
def save_tiny(kind: str, dest: Path) -> None:
    """A tiny random-weight model of ``kind`` (a diffusers pipeline class, CLIPModel or
    DepthAnything) saved as a hub repo's files under ``dest``."""
    sys.path.insert(0, str(HERE))
    import t2i_tiny
    import tiny_models

    if kind in t2i_tiny.BUILDERS:
        t2i_tiny.save_tiny_pipeline(kind, dest)
    elif kind == "CLIPModel":
        shutil.copytree(tiny_models.save_tiny_clip(dest.parent / f".{dest.name}.clip"), dest)
        shutil.rmtree(dest.parent / f".{dest.name}.clip")
    elif kind == "DepthAnything":
        tiny_models.save_tiny_depth(dest)
    else:
        raise ValueError(f"no tiny model of kind {kind!r}")
    (dest / "README.md").write_text(f"# tiny random-weight {kind} (synth2real local hub)\n")


def build_hub(
    root: str | Path,
    repos: Mapping[str, str],
    gated: Mapping[str, bool] | None = None,
    tokens: tuple[str, ...] = (TEST_TOKEN,),
    granted: tuple[str, ...] | None = None,
    refs: Mapping[str, list[str]] | None = None,
) -> Path:
    """Fill hub root ``root`` with one tiny repo per ``{repo id: kind}`` (each kind built once,
    then copied) and write ``hub.json``: the hub accepts ``tokens``, and its gated repos let
    ``granted`` in (default: every accepted token)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    built: dict[str, Path] = {}
    for rid, kind in repos.items():
        dest = root / rid
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if kind in built:
            shutil.copytree(built[kind], dest)
        else:
            save_tiny(kind, dest)
            built[kind] = dest
        register(root, rid, kind, bool((gated or {}).get(rid)), (refs or {}).get(rid, []))
    meta = json.loads((root / "hub.json").read_text())
    meta["tokens"] = sorted(set(meta["tokens"]) | set(tokens))
    meta["granted"] = sorted(set(meta.get("granted", [])) | set(granted or tokens))
    (root / "hub.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    return root


def register(
    root: Path, repo_id: str, kind: str, gated: bool = False, refs: list[str] | None = None
) -> None:
    """Add (or update) the ``hub.json`` entry of a repo whose files are in ``root/repo_id``."""
    path = root / "hub.json"
    meta = json.loads(path.read_text()) if path.exists() else {"repos": {}, "tokens": []}
    meta["repos"][repo_id] = {"gated": gated, "refs": list(refs or []), "kind": kind}
    path.write_text(json.dumps(meta, indent=1, sort_keys=True))


def config_repos(
    configfile: str | Path, repo_root: str | Path = "."
) -> dict[str, tuple[str, bool]]:
    """``{repo id: (kind, gated)}`` of every hub model a workflow config loads, as the
    workflow itself lists them (synth2real.weights, schema defaults filled)."""
    import yaml
    from snakemake.utils import validate

    sys.path.insert(0, str(Path(repo_root, "workflow", "lib").resolve()))
    from synth2real.grid import Grid
    from synth2real.weights import grid_weights

    config = yaml.safe_load(Path(configfile).read_text())
    validate(config, str(Path(repo_root, "workflow", "schemas", "config.schema.yaml")))
    return {w.repo_id: (w.loads, w.gated) for w in grid_weights(Grid(config, repo_root)).values()}


# ---------------------------------------------------------------------------------- pytest
#: Accepted by the fixture hub but not let into its gated repo (a 403, not a 401).
OTHER_TOKEN = "hf_localhub_other_token_9876543210"


def fixture_repos() -> dict[str, str]:
    """The fixture hub: every diffusers family at its tiny registry repo id, CLIP, depth, and
    a gated SD."""
    import t2i_tiny

    repos = {spec["repo_id"]: name for name, spec in t2i_tiny.TINY_SPECS.items()}
    extra = {"tiny/clip": "CLIPModel", "tiny/depth": "DepthAnything"}
    return repos | extra | {"tiny/gated-sd": "StableDiffusionPipeline"}


def add_fixture_extras(root: Path) -> None:
    """Files real repos hold that a download must leave out (other weight formats, the
    safety checker, single-file checkpoints), and an SD repo with fp16 variant files."""
    import t2i_tiny

    for name in ("pytorch_model.bin", "flax_model.msgpack", "tf_model.h5"):
        (root / "tiny/clip" / name).write_bytes(b"duplicate weights: never downloaded")
    sd = root / t2i_tiny.TINY_SPECS["StableDiffusionPipeline"]["repo_id"]
    (sd / "safety_checker").mkdir()
    (sd / "safety_checker" / "model.safetensors").write_bytes(b"never downloaded")
    (sd / "v1-5-pruned.safetensors").write_bytes(b"single-file checkpoint: never downloaded")
    fp16 = root / "tiny/sd-fp16"
    shutil.copytree(sd, fp16)
    for w in fp16.glob("*/*.safetensors"):
        shutil.copy(w, w.with_suffix(".fp16.safetensors"))
    register(root, "tiny/sd-fp16", "StableDiffusionPipeline")


try:
    import pytest

    @pytest.fixture(scope="session")
    def tiny_hub(tmp_path_factory: Any) -> Iterator[RunningHub]:
        """A served hub of tiny repos (:func:`fixture_repos`, :func:`add_fixture_extras`); tag
        ``v1`` on tiny/clip; TEST_TOKEN opens the gated repo, OTHER_TOKEN does not."""
        root = build_hub(
            tmp_path_factory.mktemp("hub"), fixture_repos(), gated={"tiny/gated-sd": True},
            tokens=(TEST_TOKEN, OTHER_TOKEN), granted=(TEST_TOKEN,), refs={"tiny/clip": ["v1"]},
        )  # fmt: skip
        add_fixture_extras(root)
        running = serve(root)
        yield running
        running.close()

except ImportError:  # the standalone server needs no pytest
    pass


# ---------------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", required=True, help="hub root folder (hub.json + repos)")
    p.add_argument("--port", type=int, help="serve on 127.0.0.1:PORT (0: any free port)")
    p.add_argument("--cdn-port", type=int, default=0, help="LFS CDN port (default: any free)")
    p.add_argument("--build-config", help="first build every repo this workflow config loads")
    p.add_argument(
        "--build", action="append", default=[], metavar="REPO=KIND",
        help="first build one repo (KIND: a diffusers pipeline class, CLIPModel, DepthAnything)",
    )  # fmt: skip
    p.add_argument("--gated", action="append", default=[], metavar="REPO", help="mark gated")
    p.add_argument("--token", action="append", default=[], help="accepted token (default: test's)")
    p.add_argument("--ready-file", help="write the hub URL here once serving")
    p.add_argument("--quiet", action="store_true", help="do not log requests")
    args = p.parse_args(argv)
    repos: dict[str, str] = {}
    gated = {r: True for r in args.gated}
    if args.build_config:
        for rid, (kind, is_gated) in config_repos(args.build_config).items():
            repos[rid] = kind
            gated[rid] = gated.get(rid, False) or is_gated
    repos |= dict(b.split("=", 1) for b in args.build)
    if repos:
        build_hub(args.root, repos, gated, tuple(args.token) or (TEST_TOKEN,))
        print(f"hub root {args.root}: built {', '.join(repos)}", file=sys.stderr)
    if args.port is None:
        return 0
    running = serve(args.root, args.port, args.cdn_port, verbose=not args.quiet)
    print(f"serving {running.url} (LFS CDN {running.cdn_url})", file=sys.stderr, flush=True)
    if args.ready_file:
        Path(args.ready_file).write_text(running.url + "\n")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        running.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Every rule has a log and a conda env that exists, the env provides every package its script
imports, and env pins agree with requirements.txt."""

import ast
import re
import sys
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
RULES = sorted((ROOT / "workflow" / "rules").glob("*.smk"))
LIB = ROOT / "workflow" / "lib"
SCRIPTS = ROOT / "workflow" / "scripts"


def requirement_pins():
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def rule_blocks():
    for path in RULES:
        text = path.read_text()
        starts = [m.start() for m in re.finditer(r"^rule \w+:", text, re.M)] + [len(text)]
        for a, b in zip(starts, starts[1:]):
            block = text[a:b]
            yield path, re.match(r"rule (\w+):", block).group(1), block


def test_every_rule_has_log_and_existing_conda_env():
    seen = 0
    for path, name, block in rule_blocks():
        if not re.search(r"^\s+(script|shell|run):", block, re.M):
            continue  # a pure target rule (all, weights) runs nothing
        seen += 1
        assert re.search(r"^\s+log:", block, re.M), f"{name} has no log:"
        env = re.search(r'^\s+conda:\s*\n\s+"([^"]+)"', block, re.M)
        assert env, f"{name} has no conda: env"
        assert (path.parent / env.group(1)).resolve().is_file(), f"{name}: {env.group(1)} missing"
    assert seen >= 15


def test_env_pins_equal_requirements():
    pins = requirement_pins()
    envs = sorted((ROOT / "envs").glob("*.yaml"))
    assert envs
    for env in envs:
        deps = yaml.safe_load(env.read_text())["dependencies"]
        pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
        for spec in pip:
            name, version = spec.split("==")
            assert name.lower() in pins, f"{env.name}: {name} is not in requirements.txt"
            assert pins[name.lower()] == version, (
                f"{env.name}: {name}=={version} != {pins[name.lower()]}"
            )


# --- envs provide what their rules import
def own_module_file(name):
    """The file of one of our modules (synth2real.*, the scripts' helpers), else None."""
    parts = name.split(".")
    for base in (LIB, SCRIPTS):
        path = base.joinpath(*parts)
        for candidate in (path.with_suffix(".py"), path / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def imported_names(path, lazy):
    """Absolute names ``path`` imports: at module level (what importing it runs), and with
    ``lazy`` also inside functions; never under ``if TYPE_CHECKING:``. ``from a import b``
    gives ``a`` and ``a.b`` (b may be a module). Our code has no relative imports."""
    tree = ast.parse(path.read_text(), str(path))
    names = set()

    def visit(node):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) and not lazy:
            return
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def import_closure(script):
    """Top-level third-party names a script's job imports: every import of the script (its
    functions are its own job's code) and, transitively, the module-level imports of every
    module of ours it reaches, with their packages' __init__ files. A library function's own
    lazy import (torch in ``script_setup.device``) is left out: it runs only in the jobs that
    call that function, which static analysis cannot tell apart."""
    todo, seen, third_party = [script], set(), set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imported_names(path, lazy=path == script):
            parts = name.split(".")
            own = [own_module_file(".".join(parts[: i + 1])) for i in range(len(parts))]
            if own[0] is not None:
                todo += [f for f in own if f is not None]
            else:
                third_party.add(parts[0])
    return third_party - set(sys.stdlib_module_names) - {"__future__"}


@cache
def packages_distributions():
    return metadata.packages_distributions()


def distributions_of(module):
    """The installed distributions that provide top-level import name ``module``."""
    dists = packages_distributions().get(module)
    assert dists, f"no installed distribution provides {module!r}"
    return {canonicalize_name(d) for d in dists}


@cache
def requirements_of(dist):
    """What installing ``dist`` installs: its unconditional requirements, transitively."""
    out = {dist}
    for spec in metadata.requires(dist) or []:
        req = Requirement(spec)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            out |= requirements_of(canonicalize_name(req.name))
    return frozenset(out)


def env_provides(env):
    """Distributions a conda env file installs: its pip pins and what they require."""
    deps = yaml.safe_load(env.read_text())["dependencies"]
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    out = set()
    for spec in pip:
        out |= requirements_of(canonicalize_name(spec.split("==")[0]))
    return out


def rule_scripts():
    """(script, env) of every script rule; a ``use rule ... with:`` copy keeps its base's
    script and env unless it overrides one."""
    own, bases = {}, {}
    for path in RULES:
        text = path.read_text()
        heads = list(re.finditer(r"^ *(?:rule (\w+)|use rule (\w+) as (\w+) with):", text, re.M))
        for head, nxt in zip(heads, [*heads[1:], None]):
            block = text[head.end() : nxt.start() if nxt else len(text)]
            name = head.group(1) or head.group(3)
            bases[name] = head.group(2)
            own[name] = [
                (path.parent / m.group(1)).resolve() if m else None
                for m in (re.search(rf'^\s+{key}:\s*\n\s+"([^"]+)"', block, re.M)
                          for key in ("script", "conda"))
            ]  # fmt: skip

    def resolve(name, i):
        return own[name][i] or (bases[name] and resolve(bases[name], i))

    return {
        name: (resolve(name, 0), resolve(name, 1)) for name in own if resolve(name, 0) is not None
    }


RULE_SCRIPTS = rule_scripts()


def test_rule_scripts_are_found():
    expected = {"captions", "digits_captions", "train_ipc", "sample_grid", "generate"}
    assert expected <= set(RULE_SCRIPTS)
    assert len(RULE_SCRIPTS) >= 25
    assert "PIL" in import_closure(SCRIPTS / "caption_images.py")  # via the captions library


@pytest.mark.parametrize("rule", sorted(RULE_SCRIPTS))
def test_rule_env_provides_what_its_script_imports(rule):
    script, env = RULE_SCRIPTS[rule]
    provided = env_provides(env)
    missing = {
        module: sorted(distributions_of(module))
        for module in sorted(import_closure(script))
        if not distributions_of(module) & provided
    }
    assert not missing, f"rule {rule}: {env.name} lacks {missing} (imported by {script.name})"

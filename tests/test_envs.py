"""Every rule has a log and a conda env that exists, and env pins agree with requirements.txt."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = sorted((ROOT / "workflow" / "rules").glob("*.smk"))


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

"""dvc.yaml re-runs a stage when its code changes, declares metrics, and matches make demo."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"features", "rating", "training", "serving", "monitoring"}


def _pipeline() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())


def _deps(stage: dict) -> list[str]:
    return [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]


def _variables() -> dict[str, str]:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    values = {"generate.end": str(params["generate"]["end"])}
    for entry in _pipeline().get("vars", []):
        values.update({key: str(value) for key, value in entry.items()})
    return values


def _commands(cmd: str) -> list[str]:
    """A stage's commands with ``${...}`` filled in, whitespace normalised."""
    variables = _variables()
    filled = re.sub(r"\$\{([^}]+)\}", lambda m: variables[m.group(1)], cmd)
    return [" ".join(part.split()) for part in filled.split("&&")]


def test_every_stage_lists_the_code_it_runs_and_every_dep_exists():
    for name, stage in _pipeline()["stages"].items():
        deps = _deps(stage)
        assert "riskgrade/config.py" in deps and "riskgrade/cli.py" in deps, name
        assert PACKAGES & set(deps), f"stage {name} lists no package"
        produced = {out for s in _pipeline()["stages"].values() for out in _outs(s)}
        for dep in deps:
            assert (ROOT / dep).exists() or any(dep.startswith(p) for p in produced), dep


def _outs(stage: dict) -> list[str]:
    paths = []
    for key in ("outs", "metrics", "plots"):
        paths += [o if isinstance(o, str) else next(iter(o)) for o in stage.get(key, [])]
    return paths


def test_training_stage_reads_every_package_the_training_pipeline_imports():
    stage = _pipeline()["stages"]["train"]
    assert {"features", "rating", "training"} <= set(_deps(stage))
    assert {"rating", "train"} <= set(stage["params"])


def test_metrics_are_declared_uncached_for_dvc_metrics_show_and_diff():
    train = _pipeline()["stages"]["train"]
    assert train["metrics"] == [{"reports/metrics.json": {"cache": False}}]
    assert train["plots"] == [{"reports/plots": {"cache": False}}]


def test_make_demo_runs_every_pipeline_command_writing_the_same_paths():
    demo = (ROOT / "scripts" / "demo.sh").read_text()
    assignments = dict(re.findall(r"^([A-Z_]+)=(\S+)", demo, flags=re.MULTILINE))
    variables = _variables()
    assert assignments["AS_OF"] == variables["generate.end"]
    assert assignments["PREVIOUS_QUARTER"] == variables["previous_quarter"]
    text = demo.replace("$RG", "riskgrade")
    for name in ("PREVIOUS_QUARTER", "AS_OF"):
        text = text.replace(f'"${name}"', assignments[name]).replace(f"${name}", assignments[name])
    lines = {" ".join(line.split()) for line in text.splitlines()}
    flat = " ".join(lines)
    for name, stage in _pipeline()["stages"].items():
        for command in _commands(stage["cmd"]):
            found = re.search(rf"(?:^|\s){re.escape(command)}(?=\s|$)", flat)
            assert found, f"make demo does not run stage {name}'s: {command}"

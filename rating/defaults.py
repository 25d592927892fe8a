"""The default master scale and policy: the ``rating:`` section of the project's params.yaml.

params.yaml is the one place the numbers live. Code that needs a scale or policy without a
params file of its own (``MasterScale()``, ``RatingPolicy()``, tests) reads them from there;
the wheel ships that same file as ``rating/params.yaml``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

_PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_PARAMS_PATHS: tuple[Path, ...] = (
    _PACKAGE_DIR / "params.yaml",  # installed wheel (force-included, see pyproject.toml)
    _PACKAGE_DIR.parent / "params.yaml",  # source checkout
)


class DefaultsError(ValueError):
    """The params file holding the default rating settings is missing or invalid."""


def default_params_path() -> Path:
    """The project's params.yaml the default rating settings are read from.

    Raises:
        DefaultsError: if no such file exists.
    """
    for path in DEFAULT_PARAMS_PATHS:
        if path.is_file():
            return path
    places = [str(p) for p in DEFAULT_PARAMS_PATHS]
    raise DefaultsError(f"no params.yaml with the default rating settings at {places}")


@lru_cache(maxsize=16)
def params_section(key: str, path: Path | None = None, *, required: bool = True) -> dict[str, Any]:
    """One top-level section of a params file (default: the project's params.yaml).

    Args:
        key: the section (``rating``, ``covenants``...).
        path: the params file.
        required: when False, a missing section is an empty mapping.

    Raises:
        DefaultsError: naming the file if it is unreadable or the section is not a mapping.
    """
    source = path or default_params_path()
    try:
        document = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise DefaultsError(f"cannot read {source}: {error}") from error
    section = document.get(key) if isinstance(document, dict) else None
    if section is None and not required:
        return {}
    if not isinstance(section, dict):
        raise DefaultsError(f"{source} has no '{key}:' mapping")
    return section


def rating_section(path: Path | None = None) -> dict[str, Any]:
    """The ``rating:`` section of a params file (default: the project's params.yaml).

    Raises:
        DefaultsError: naming the file if it is unreadable or has no ``rating:`` mapping.
    """
    return params_section("rating", path)


def default_section(name: str, path: Path | None = None) -> dict[str, Any]:
    """One sub-section (``scale`` or ``policy``) of the default ``rating:`` section.

    Raises:
        DefaultsError: if the section is missing or not a mapping.
    """
    value = rating_section(path).get(name)
    if not isinstance(value, dict):
        raise DefaultsError(f"the 'rating:' section has no '{name}:' mapping")
    return dict(value)

"""Print line coverage per package from the last test run; exit 1 if one is below the minimum.

Usage: ``python scripts/coverage_gate.py --min 85 [--skip features/spark] features rating ...``
(``make test`` runs it after pytest has written the combined ``.coverage`` data file; code that
only another target tests, such as the Spark engine under ``make test-spark``, is skipped there
and gated by that target).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import coverage
from coverage.exceptions import NoDataError


def package_coverage(
    cov: coverage.Coverage, package: str, skip: tuple[str, ...] = ()
) -> tuple[int, int, float]:
    """(statements, missed, percent covered) of the files under ``package/``, less ``skip``.

    ``package`` and each ``skip`` entry is a folder or a single file.

    Raises:
        coverage.exceptions.NoDataError: if no file of the package was measured.
    """
    data = cov.get_data()
    statements = missed = 0
    for filename in sorted(data.measured_files()):
        # Python files only: jinja2 compiles templates under the template's own file name.
        path = Path(filename)
        resolved = path.resolve()
        inside = resolved.is_relative_to(Path(package).resolve())
        skipped = any(resolved.is_relative_to(Path(s).resolve()) for s in skip)
        if path.suffix == ".py" and inside and not skipped:
            _, lines, _, missing, _ = cov.analysis2(filename)
            statements += len(lines)
            missed += len(missing)
    if statements == 0:
        raise NoDataError(f"no measured file under {package}/")
    return statements, missed, 100.0 * (statements - missed) / statements


def main(argv: list[str] | None = None) -> int:
    """Report per package; 0 when every package reaches ``--min``, else 1 (2: no data)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packages", nargs="+", help="package folders to check")
    parser.add_argument("--min", type=float, required=True, help="minimum line coverage, %%")
    parser.add_argument(
        "--skip", action="append", default=[], help="folder or file left out (repeatable)"
    )
    parser.add_argument("--data-file", default=".coverage", help="combined coverage data")
    args = parser.parse_args(argv)
    if not Path(args.data_file).is_file():
        print(f"error: no coverage data at {args.data_file}: run the tests first", file=sys.stderr)
        return 2
    cov = coverage.Coverage(data_file=args.data_file)
    cov.load()
    failed = []
    print(f"{'package':<12} {'lines':>7} {'missed':>7} {'cover':>7}")
    for package in args.packages:
        try:
            statements, missed, percent = package_coverage(cov, package, tuple(args.skip))
        except NoDataError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        mark = "" if percent >= args.min else f"  below {args.min:g}%"
        name = package + "/" if Path(package).is_dir() else package
        print(f"{name:<12} {statements:>7} {missed:>7} {percent:>6.1f}%{mark}")
        if mark:
            failed.append(package)
    if failed:
        print(f"line coverage below {args.min:g}% in: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

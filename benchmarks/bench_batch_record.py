"""Benchmark ``riskgrade score --record``: batch decisions written to the audit log.

A portfolio (``--raw``, default ``/work/bigdata/p100k`` when present, else a generated one of
``--customers``) is read as known at ``--as-of``, scored with a tiny real bundle
(``tests/serving/factory.make_bundle``: the cost of recording does not depend on the model's
quality) and judged; then its ratings are recorded into a fresh SQLite audit log (WAL,
synchronous=FULL) by `management.batch_decisions.record_scores`: per-customer record digests,
decisions, one transaction per chunk. Reported: seconds of each step, decisions per second,
the re-run of the same command (writes nothing), a full ``verify`` of the chain, and the
size of the log.

Writes ``benchmarks/results/batch_record.json``.
Usage: uv run python benchmarks/bench_batch_record.py [--raw DIR] [--generate --customers 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from audit import AuditConfig, SqlAuditStore  # noqa: E402
from features.synthetic import GeneratorConfig, generate  # noqa: E402
from features.validate import load_raw_at  # noqa: E402
from management.batch_decisions import DEFAULT_CHUNK, record_scores  # noqa: E402
from management.judgement import RatingRules  # noqa: E402
from management.portfolio import judge_scores  # noqa: E402
from rating.config import default_rating_config  # noqa: E402
from rating.model import RatingModel  # noqa: E402
from serving.batch import score_portfolio  # noqa: E402
from tests.serving.factory import make_bundle  # noqa: E402

T = TypeVar("T")
BIG = Path("/work/bigdata/p100k")


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    value = fn()
    return value, round(time.perf_counter() - start, 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--raw", type=Path, default=BIG if BIG.is_dir() else None)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--generate", action="store_true", help="generate even if p100k exists")
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2025, 12, 31))
    parser.add_argument("--chunk", type=int, default=DEFAULT_CHUNK)
    args = parser.parse_args()
    out: dict[str, Any] = {"what": __doc__.splitlines()[0] if __doc__ else ""}
    with tempfile.TemporaryDirectory() as tmp:
        raw = None if args.generate else args.raw
        if raw is None:
            raw = Path(tmp) / "raw"
            generate(GeneratorConfig(customers=args.customers, seed=1), raw)
        known, seconds = timed(lambda: load_raw_at(raw, args.as_of))
        tables = known.tables
        out["raw"] = str(raw) if raw != Path(tmp) / "raw" else f"generated {args.customers}"
        out["rows"] = tables.row_counts()
        out["seconds"] = {"read_validate": seconds}
        model = RatingModel.load(make_bundle(Path(tmp) / "bundle").path)
        config = default_rating_config()
        rules = RatingRules(model.scale, model.policy, config.judgement)
        rated, out["seconds"]["score"] = timed(lambda: score_portfolio(tables, args.as_of, model))
        rated, out["seconds"]["judge"] = timed(
            lambda: judge_scores(rated, tables, None, rules, args.as_of)
        )
        db = Path(tmp) / "audit.db"
        store = SqlAuditStore(AuditConfig(path=db))

        def record() -> Any:
            return record_scores(
                store,
                rated,
                tables,
                rules,
                as_of=args.as_of,
                source=str(raw),
                chunk_size=args.chunk,
            )

        first, out["seconds"]["record"] = timed(record)
        again, out["seconds"]["record_again"] = timed(record)
        check, out["seconds"]["verify"] = timed(store.verify)
        store.close()
        out["customers"] = len(rated)
        out["chunk_size"] = args.chunk
        out["written"], out["written_again"] = first.written, again.written
        out["decisions_per_second"] = round(first.written / out["seconds"]["record"])
        out["verify_ok"] = check.ok
        out["audit_db_mb"] = round(
            sum(p.stat().st_size for p in Path(tmp).glob("audit.db*")) / 2**20, 1
        )
    out.update(
        python=platform.python_version(),
        machine=platform.machine(),
        cpus=os.cpu_count(),
        load_average=list(os.getloadavg()),
    )
    target = ROOT / "results" / "batch_record.json"
    target.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

"""``riskgrade load``: copy a raw folder into a database that ``--raw URL`` then reads.

Registered on the main app by ``riskgrade.cli`` (``cli_data.register(app)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the ``load`` command to the riskgrade app."""

    @app.command()
    def load(
        raw: Annotated[Path, typer.Option(help="raw folder to copy (validated first)")],
        to: Annotated[
            str,
            typer.Option(help="database URL: postgresql://user@host/db or duckdb:///file.duckdb"),
        ],
        replace: Annotated[
            bool, typer.Option(help="replace the contract tables the database already holds")
        ] = False,
    ) -> None:
        """Write a raw folder into a database: contract types, primary keys, indexes.

        The folder must pass the contract (nothing is written otherwise); all tables are
        written in one transaction. A database that already holds contract tables is left
        alone unless --replace.
        """
        from rich.progress import Progress

        from features.dbload import load_folder
        from riskgrade.console import console, err_console, rows_table

        with Progress(console=err_console, transient=True) as progress:
            tasks: dict[str, object] = {}

            def report(table: str, done: int, total: int) -> None:
                if table not in tasks:
                    tasks[table] = progress.add_task(table, total=total)
                progress.update(tasks[table], completed=done)  # type: ignore[arg-type]

            summary = load_folder(raw, to, replace=replace, progress=report)
        replaced = f" (replaced {', '.join(summary.replaced)})" if summary.replaced else ""
        console.print(
            rows_table(
                f"Loaded {raw} into {summary.target}{replaced}",
                ["table", "rows"],
                [(table, f"{n:,}") for table, n in summary.row_counts.items()],
            )
        )

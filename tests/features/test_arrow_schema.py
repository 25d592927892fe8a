"""The generator's Arrow schemas are derived from the pandera contract, not written twice."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.schema import SCHEMAS, arrow_schema
from features.synthetic import GeneratorConfig, generate
from rating.config import default_rating_config


def test_arrow_schemas_follow_the_contract_columns_in_order() -> None:
    # Given every raw table of the contract
    for table, schema in SCHEMAS.items():
        # When its Arrow schema is derived
        derived = arrow_schema(table)
        # Then it has the contract's columns in the contract's order
        assert derived.names == list(schema.columns), table


def test_generated_files_carry_the_derived_schemas(tmp_path: Path) -> None:
    # Given a small generated portfolio with human judgement, reviews and contract terms
    rating = default_rating_config()
    generate(
        GeneratorConfig(customers=60, seed=2, chunk_customers=30),
        tmp_path,
        judgement=rating.generator_spec(),
        records=rating.records_spec(),
    )
    # When each raw file's schema is read back
    for table in SCHEMAS:
        written = pq.read_schema(tmp_path / f"{table}.parquet").remove_metadata()
        # Then it is the schema derived from the contract
        assert written == arrow_schema(table), table


def test_pandera_dtypes_map_to_the_arrow_types_the_generator_writes() -> None:
    # Given the repayments table (string, int, float and date columns)
    derived = arrow_schema("repayments")
    # Then each dtype maps to its Arrow type
    assert derived.field("facility_id").type == pa.string()
    assert derived.field("instalment_no").type == pa.int64()
    assert derived.field("amount_due").type == pa.float64()
    assert derived.field("due_date").type == pa.timestamp("ns")
    assert arrow_schema("customers").field("fraud").type == pa.bool_()


def test_an_unknown_table_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        arrow_schema("no_such_table")

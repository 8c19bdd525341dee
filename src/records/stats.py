"""Record statistics by group (the merged data as one group, each shard of a split as one): records, records with
an input, characters of each text field, category counts and record length bins, counted by DuckDB from a
per-record table (src/core/scratch.py: flat memory at any size).
"""
from __future__ import annotations

import itertools
from collections.abc import Mapping

import duckdb
import numpy as np

from src.core.schema import CATEGORIES

TEXT_FIELDS = ("instruction", "input", "output")
# Lower edges of the record length bins (characters of instruction, input and output together).
LENGTH_BINS = (0, 50, 100, 200, 400, 800, 1600, 3200, 6400)
# The columns of a per-record table these statistics read, as CREATE TABLE writes them.
STATS_COLUMNS = "category UTINYINT, " + ", ".join(f"chars_{field} UINTEGER" for field in TEXT_FIELDS)


def stats_columns(rows: np.ndarray) -> dict[str, np.ndarray]:
    """The STATS_COLUMNS of record index rows (src/records/index.py), for an INSERT ... BY NAME."""
    return {"category": rows["category"], **{f"chars_{field}": rows["chars"][:, number]
                                             for number, field in enumerate(TEXT_FIELDS)}}


def length_label(number: int) -> str:
    start = LENGTH_BINS[number]
    return f"{start}+" if number == len(LENGTH_BINS) - 1 else f"{start}-{LENGTH_BINS[number + 1] - 1}"


def group_stats(database: duckdb.DuckDBPyConnection, table: str, group: str) -> duckdb.DuckDBPyRelation:
    """One row per group (column grp: ``group``, an expression of ``table``'s columns): records, with_input,
    chars_<field> (sums), a column per category (its name) and per length bin (length_label())."""
    total = " + ".join(f"chars_{field}" for field in TEXT_FIELDS)
    bins = [*LENGTH_BINS, None]
    counts = [*(f'count(*) FILTER (category = {code}) AS "{name}"' for code, name in enumerate(CATEGORIES)),
              *(f'count(*) FILTER ({total} >= {start}' + (f" AND {total} < {stop}" if stop else "")
                + f') AS "{length_label(number)}"' for number, (start, stop) in enumerate(itertools.pairwise(bins)))]
    return database.sql(
        f"SELECT {group} AS grp, count(*) AS records, count(*) FILTER (chars_input > 0) AS with_input, "
        + ", ".join(f"sum(chars_{field})::BIGINT AS chars_{field}" for field in TEXT_FIELDS)
        + f", {', '.join(counts)} FROM {table} GROUP BY grp")


def mean_chars(stats: Mapping[str, int]) -> dict[str, float]:
    """Mean characters of each text field in one group's row of group_stats()."""
    records = int(stats["records"])
    return {field: round(int(stats[f"chars_{field}"]) / records, 2) if records else 0.0 for field in TEXT_FIELDS}


def summary(stats: Mapping[str, int]) -> dict:
    """The metrics of one group's row of group_stats()."""
    return {"records": int(stats["records"]), "with_input": int(stats["with_input"]),
            "categories": {category: int(stats[category]) for category in CATEGORIES}, "mean_chars": mean_chars(stats)}

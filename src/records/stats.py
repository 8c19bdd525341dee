"""Record statistics by group (the merged data as one group, each shard of a split as one): records, records with
an input, characters of each text field, category counts and record length bins. DuckDB counts them from a
per-record table (src/core/scratch.py: flat memory at any size); pandas shapes them.
"""
from __future__ import annotations

import itertools

import duckdb
import numpy as np
import pandas as pd

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


def group_stats(database: duckdb.DuckDBPyConnection, table: str, group: str, groups: int) -> pd.DataFrame:
    """One row per group 0 .. groups - 1 (``group``: an expression of ``table``'s columns): records, with_input,
    chars_<field> (sums), a column per category (its name) and per length bin (length_label()); zeros for a group
    with no records."""
    total = " + ".join(f"chars_{field}" for field in TEXT_FIELDS)
    bins = [*LENGTH_BINS, None]
    counts = [*(f'count(*) FILTER (category = {code}) AS "{name}"' for code, name in enumerate(CATEGORIES)),
              *(f'count(*) FILTER ({total} >= {start}' + (f" AND {total} < {stop}" if stop else "")
                + f') AS "{length_label(number)}"' for number, (start, stop) in enumerate(itertools.pairwise(bins)))]
    frame = database.sql(
        f"SELECT {group} AS grp, count(*) AS records, count(*) FILTER (chars_input > 0) AS with_input, "
        + ", ".join(f"sum(chars_{field})::BIGINT AS chars_{field}" for field in TEXT_FIELDS)
        + f", {', '.join(counts)} FROM {table} GROUP BY grp").df()
    return frame.set_index("grp").reindex(range(groups), fill_value=0).astype("int64")


def mean_chars(stats: pd.Series) -> dict[str, float]:
    """Mean characters of each text field in one group's row of group_stats()."""
    records = int(stats["records"])
    return {field: round(int(stats[f"chars_{field}"]) / records, 2) if records else 0.0 for field in TEXT_FIELDS}


def summary(stats: pd.Series) -> dict:
    """The metrics of one group's row of group_stats()."""
    return {"records": int(stats["records"]), "with_input": int(stats["with_input"]),
            "categories": {category: int(stats[category]) for category in CATEGORIES}, "mean_chars": mean_chars(stats)}

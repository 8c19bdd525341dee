"""The dataset card: a Hugging Face README.md beside the shards, with every shard as a config, the license,
provenance, per-shard counts and the leakage and contamination certificate's headline numbers."""
from __future__ import annotations

import json
from collections.abc import Mapping

import pandas as pd

from src.core.config import CardParams, SplitParams
from src.core.errors import DatasetError
from src.core.schema import CATEGORIES


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def card_license(card: CardParams, sources: Mapping[str, Mapping[str, object]]) -> str:
    """card.license, or the sources' when they agree. A share-alike source license must pass to the shards."""
    declared = {name: str(source["license"]) for name, source in sources.items() if source.get("license")}
    share_alike = {name: license_id for name, license_id in declared.items() if license_id.startswith("cc-by-sa-")}
    if len(set(share_alike.values())) > 1:
        raise DatasetError(f"raw.sources: share-alike licenses {', '.join(sorted(set(share_alike.values())))} "
                           "cannot be combined in one dataset; use sources under one of them")
    if share_alike:
        name, required = next(iter(share_alike.items()))
        if card.license not in (None, required):
            raise DatasetError(f"card.license {card.license!r} contradicts source '{name}''s share-alike license "
                               f"{required!r}; shards made from it must carry {required!r} (set card.license to "
                               "it, or remove it to take the sources')")
        return required
    if card.license is not None:
        return card.license
    distinct = set(declared.values())
    if len(distinct) == 1 and len(declared) == len(sources):
        return distinct.pop()
    return "other" if distinct else "unknown"


def render_card(card: CardParams, split: SplitParams, provenance: Mapping[str, object], shards: pd.DataFrame,
                categories: pd.DataFrame, file_name: str, placeholder: str, headline: Mapping[str, object],
                eval_files: Mapping[str, Mapping[str, object]], ngram: int) -> str:
    """README.md text. ``shards`` and ``categories`` are the split's per-shard tables (src/sharding/tables.py),
    ``headline`` its metrics, ``eval_files`` what was read of each evaluation file."""
    sources: Mapping[str, Mapping[str, object]] = provenance["sources"]  # type: ignore[assignment]
    license_id = card_license(card, sources)
    # Written line by line: a YAML dump of 1,024 configs takes a noticeable part of a second. JSON-quoted strings
    # are valid YAML.
    header = [f"license: {license_id}", "language:", "- ja", "task_categories:", "- text-generation",
              f"pretty_name: {_quoted(card.pretty_name)}", "configs:"]
    for name in shards["shard"]:
        header += [f"- config_name: {_quoted(name)}", "  data_files:", "  - split: train",
                   f"    path: {_quoted(file_name.replace(placeholder, name))}"]
    counts = categories.pivot(index="shard", columns="category", values="records")[list(CATEGORIES)]
    lines = ["---", *header, "---", "",
             f"# {card.pretty_name}", "",
             f"{int(shards['records'].sum()):,} Japanese instruction records in "
             f"{len(shards)} JSON Lines shards. Each line is exactly Python's `json.dumps({{\"instruction\", "
             "\"input\", \"output\"}, ensure_ascii=False)` then a newline; load one shard with "
             "`datasets.load_dataset(\"json\", data_files=...)` or by its config name.", "",
             f"License: {license_id}.", "", "## Sources", "",
             "| source | from | checksum | license | records read | records kept |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, source in sources.items():
        origin = source.get("path") or source.get("url") or f"built-in synthetic sample (seed {source.get('seed')})"
        checksum = next((f"{key} {source[key]}" for key in ("sha256", "md5") if key in source), "-")
        lines.append(f"| {name} | `{origin}` | {checksum} | {source.get('license') or '-'} | {source['records']} | "
                     f"{source['kept']} |")
    merge: Mapping[str, object] = provenance["merge"]  # type: ignore[assignment]
    lines += ["", "## Merge and split", "",
              f"- merge: `drop_duplicates: {str(merge['drop_duplicates']).lower()}`, "
              f"`drop_near_duplicates: {str(merge.get('drop_near_duplicates', False)).lower()}`",
              f"- split: strategy `{split.strategy}`" + (f", seed {split.seed}" if split.strategy == "shuffle" else "")
              + f", {split.count} shards, gaps {'allowed' if split.allow_gaps else 'not allowed'}", "",
              "## Shards", "",
              "| shard | range | records | md5 | " + " | ".join(CATEGORIES) + " |",
              "| --- | --- | --- | --- | " + " | ".join("---" for _ in CATEGORIES) + " |"]
    for shard in shards.itertuples():
        lines.append(f"| {shard.shard} | [{shard.start}, {shard.stop}) | {shard.records} | `{shard.md5}` | "
                     + " | ".join(map(str, counts.loc[shard.shard])) + " |")
    lines += ["", "## Leakage and contamination", "",
              "- records whose instruction and input already appear in an earlier shard: "
              f"{headline['cross_shard_duplicates']}",
              "- record pairs across shards whose instruction and input are near-duplicates (MinHash, exact ones "
              f"included): {headline['near_duplicate_pairs']}"]
    if not eval_files:
        lines.append("- contamination: no evaluation files were named (`contamination.eval`)")
    else:
        lines += [f"- records whose instruction or output shares {ngram} characters in a row with an evaluation "
                  f"file: {headline['contaminated_records']}", "",
                  f"| evaluation file | path | sha256 | items | distinct {ngram}-grams |",
                  "| --- | --- | --- | --- | --- |"]
        lines += [f"| {name} | `{found['path']}` | {found['sha256']} | {found['items']} | {found['ngrams']} |"
                  for name, found in eval_files.items()]
    return "\n".join([*lines, ""])

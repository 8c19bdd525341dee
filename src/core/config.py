"""params.yaml read into frozen dataclasses. Each bad value is one DatasetError that names its key and what to write
instead; of several problems in a section, the first in check order is named. Sections are string-keyed mappings
(never lists), so that `dvc params diff` and `dvc exp show` give each value a row or column."""
from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from src.core.errors import DatasetError
from src.core.schema import FIELDS

SECTIONS = ("raw", "merge", "split", "card")
LICENSE_ID = re.compile(r"[a-z0-9][a-z0-9.+-]*")
SOURCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
STRATEGIES = ("contiguous", "stratified", "shuffle")  # src/sharding/strategies.py
# shard1 ... shardN: `dvc exp run -S split.shards.shard2=7000` wants a key that starts with a letter.
SHARD_KEY = re.compile(r"shard([1-9][0-9]*)")
HEX_DIGEST_LENGTHS = {"md5": 32, "sha256": 64}


def _mapping(value: object, where: str, known: tuple[str, ...] | None = None) -> dict:
    """A string-keyed mapping, with unknown keys refused when ``known`` is given."""
    if value is None:
        raise DatasetError(f"{where} is missing or empty; it must be a mapping of names to values")
    if not isinstance(value, dict):
        kind = "a list" if isinstance(value, list) else repr(value)
        raise DatasetError(f"{where} must be a mapping of names to values, not {kind}")
    for key in value:
        if not isinstance(key, str):
            raise DatasetError(f"{where}: key {key!r} must be a string; quote it in params.yaml")
        if known is not None and key not in known:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}"
            raise DatasetError(f"{where}: unknown key {key!r}; {hint}")
    return value


def _section(value: object, where: str, checks: dict[str, Callable[[object, str], Any]],
             required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The values checked by ``checks`` in table order. A key left out gets the dataclass default, unless it is
    ``required``: then None is checked, so that the message says what to write."""
    section = _mapping(value, where, tuple(checks))
    return {key: check(section.get(key), f"{where}.{key}") for key, check in checks.items()
            if key in section or key in required}


def _integer(value: object, where: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):  # YAML's true is a bool, and a bool is an int
        raise DatasetError(f"{where} must be an integer, not {value!r}")
    if value < minimum:
        raise DatasetError(f"{where} must be at least {minimum}, not {value}")
    return value


def _boolean(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise DatasetError(f"{where} must be true or false, not {value!r}")
    return value


def _fraction(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise DatasetError(f"{where} must be a number above 0 and at most 1, not {value!r}")
    return float(value)


def _string(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise DatasetError(f"{where} must be a non-empty string, not {value!r}")
    return value


def _license(value: object, where: str) -> str:
    text = _string(value, where)
    if not LICENSE_ID.fullmatch(text):
        raise DatasetError(f"{where} must be a license identifier as the Hugging Face Hub writes them (like "
                           f"'cc-by-sa-3.0' or 'apache-2.0'), not {text!r}")
    return text


@dataclass(frozen=True)
class PathSource:
    """A local JSON array or JSON Lines file."""

    path: str


@dataclass(frozen=True)
class UrlSource:
    """A download pinned by its checksum: ``algorithm`` (md5 or sha256) and ``digest`` (lowercase hex)."""

    url: str
    algorithm: str
    digest: str


@dataclass(frozen=True)
class SampleSource:
    """The built-in synthetic sample: ``records`` records generated from ``seed``."""

    records: int
    seed: int


Origin = PathSource | UrlSource | SampleSource
ORIGIN_KINDS = {"path": PathSource, "url": UrlSource, "sample": SampleSource}


@dataclass(frozen=True)
class SourceSpec:
    """One source: where its records come from, and how its fields map onto the schema."""

    name: str
    origin: Origin
    fields: Mapping[str, str] = field(default_factory=dict)
    number_records: bool = False
    license: str | None = None

    @property
    def kind(self) -> str:
        return next(kind for kind, origin_type in ORIGIN_KINDS.items() if isinstance(self.origin, origin_type))

    @classmethod
    def parse(cls, name: object, value: object) -> SourceSpec:
        where = f"raw.sources.{name}"
        if not isinstance(name, str) or not SOURCE_NAME.fullmatch(name):
            raise DatasetError(f"raw.sources: source name {name!r} must use only letters, digits, '_' and "
                               "'-' (it names a file under data/raw/)")
        spec = _mapping(value, where, ("path", "url", "md5", "sha256", "sample", "fields", "number_records", "license"))
        kinds = [kind for kind in ORIGIN_KINDS if kind in spec]
        if len(kinds) != 1:
            raise DatasetError(f"{where}: give exactly one of path, url or sample "
                               f"(found: {', '.join(kinds) or 'none'})")
        pins = [algorithm for algorithm in HEX_DIGEST_LENGTHS if algorithm in spec]
        if kinds == ["url"] and len(pins) != 1:
            raise DatasetError(f"{where}: a url source needs exactly one checksum, md5 or sha256, to pin its bytes")
        if kinds != ["url"] and pins:
            raise DatasetError(f"{where}: {pins[0]} pins a download; only url sources take it")
        origin: Origin
        if kinds == ["path"]:
            origin = PathSource(_string(spec["path"], f"{where}.path"))
        elif kinds == ["url"]:
            algorithm, length = pins[0], HEX_DIGEST_LENGTHS[pins[0]]
            digest = _string(spec[algorithm], f"{where}.{algorithm}")
            if not re.fullmatch(rf"[0-9a-f]{{{length}}}", digest):
                raise DatasetError(f"{where}.{algorithm} must be {length} lowercase hex digits")
            origin = UrlSource(_string(spec["url"], f"{where}.url"), algorithm, digest)
        else:
            sample = _mapping(spec["sample"], f"{where}.sample", ("records", "seed"))
            origin = SampleSource(records=_integer(sample.get("records"), f"{where}.sample.records"),
                                  seed=_integer(sample.get("seed", 0), f"{where}.sample.seed", 0))
        fields = {key: _string(target, f"{where}.fields.{key}")
                  for key, target in _mapping(spec.get("fields", {}), f"{where}.fields").items()}
        for source_field, target in fields.items():
            if target not in FIELDS:
                raise DatasetError(f"{where}.fields.{source_field}: '{target}' is not a record field; "
                                   f"use one of {', '.join(FIELDS)}")
            if list(fields.values()).count(target) > 1:
                raise DatasetError(f"{where}.fields: two source fields are renamed to '{target}'")
        license_id = _license(spec["license"], f"{where}.license") if "license" in spec else None
        return cls(name, origin, fields, _boolean(spec.get("number_records", cls.number_records),
                                                  f"{where}.number_records"), license_id)


@dataclass(frozen=True)
class RawParams:
    sources: tuple[SourceSpec, ...]

    @classmethod
    def parse(cls, value: object) -> RawParams:
        sources = _mapping(_mapping(value, "raw", ("sources",)).get("sources"), "raw.sources")
        if not sources:
            raise DatasetError("raw.sources is empty; name at least one source")
        return cls(tuple(SourceSpec.parse(name, spec) for name, spec in sources.items()))


@dataclass(frozen=True)
class MergeParams:
    drop_duplicates: bool = False
    drop_near_duplicates: bool = False

    @classmethod
    def parse(cls, value: object) -> MergeParams:
        return cls(**_section(value, "merge", {"drop_duplicates": _boolean, "drop_near_duplicates": _boolean}))


@dataclass(frozen=True)
class NearDuplicateParams:
    """MinHash of character n-grams, banded for LSH (src/certificate/near_duplicates.py)."""

    ngram: int = 5
    permutations: int = 128
    bands: int = 16
    threshold: float = 0.8

    @classmethod
    def parse(cls, value: object) -> NearDuplicateParams:
        params = cls(**_section(value, "near_duplicates", {"ngram": _integer, "permutations": _integer,
                                                           "bands": _integer, "threshold": _fraction}))
        if params.permutations % params.bands:
            raise DatasetError(f"near_duplicates.bands ({params.bands}) must divide near_duplicates.permutations "
                               f"({params.permutations}); each band takes permutations / bands of them")
        return params

    @property
    def rows(self) -> int:
        return self.permutations // self.bands  # signature values per band


@dataclass(frozen=True)
class ContaminationParams:
    """Evaluation files (name, path) whose text the shards are checked against, by shared character n-grams."""

    ngram: int = 13
    eval_files: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, value: object) -> ContaminationParams:
        section = _mapping(value, "contamination", ("ngram", "eval"))
        files = _mapping(section.get("eval", {}), "contamination.eval")  # checked before ngram
        for name, path in files.items():
            if not SOURCE_NAME.fullmatch(name):
                raise DatasetError(f"contamination.eval: name {name!r} must be letters, digits, '_' or '-'")
            _string(path, f"contamination.eval.{name}")
        return cls(_integer(section.get("ngram", cls.ngram), "contamination.ngram"), tuple(files.items()))


@dataclass(frozen=True)
class ShardRange:
    """Shard ``number`` of ``count``: the half-open range [start, stop) of merged indices."""

    number: int
    count: int
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def key(self) -> str:
        return f"shard{self.number}"  # in params.yaml

    @property
    def name(self) -> str:
        return shard_name(self.number, self.count)  # in file names, metrics and plots


def shard_name(number: int, count: int) -> str:
    return f"{number}_of_{count}"


def even_ranges(records: int, count: int) -> list[tuple[int, int]]:
    """``count`` contiguous [start, stop) ranges over ``records``; the first ones take the extra records."""
    if count < 1 or records < count:
        raise DatasetError(f"cannot cut {records} records into {count} non-empty shards; choose 1..{records} shards")
    base, extra = divmod(records, count)
    return list(itertools.pairwise(number * base + min(number, extra) for number in range(count + 1)))


def _shard_ranges(value: object, count: int, allow_gaps: bool) -> tuple[ShardRange, ...]:
    """split.shards in number order, each ``STOP`` (starting where the shard before it stops) or ``{start, stop}``.
    Every key is checked, then every range, then the count, then how the ranges fit together."""
    shards = _mapping(value, "split.shards")
    numbered: list[tuple[int, str]] = []
    for key in shards:
        match = SHARD_KEY.fullmatch(key)
        if not match:
            raise DatasetError(f"split.shards: {key!r} is not a shard key; name the shards shard1 ... shard{count}")
        if int(match.group(1)) > count:
            raise DatasetError(f"split.shards: '{key}' does not fit split.count {count}; "
                               f"name the shards shard1 ... shard{count}")
        numbered.append((int(match.group(1)), key))
    ranges: list[ShardRange] = []
    for number, key in sorted(numbered):
        spec, where = shards[key], f"split.shards.{key}"
        if isinstance(spec, dict):
            bounds = _mapping(spec, where, ("start", "stop"))
            for bound in ("start", "stop"):
                if bound not in bounds:
                    raise DatasetError(f"{where}: '{bound}' is missing; give a shard's stop, or both start and stop")
            start, stop = _integer(bounds["start"], f"{where}.start", 0), _integer(bounds["stop"], f"{where}.stop")
            problem = f"start {start} must be below stop {stop} (ranges are half-open [start, stop))"
        elif spec is None or isinstance(spec, list):
            raise DatasetError(f"{where} must be the index where the shard stops (an integer), or {{start, stop}}, "
                               f"not {'a list' if isinstance(spec, list) else 'empty'}")
        else:
            start, stop = ranges[-1].stop if ranges else 0, _integer(spec, where)
            problem = (f"stop {stop} must be above {start}, where the shard before it stops (a shard's value is the "
                       "index where it stops)")
        if start >= stop:
            raise DatasetError(f"{where}: {problem}")
        ranges.append(ShardRange(number, count, start, stop))
    if len(ranges) != count:
        raise DatasetError(f"split.count is {count} but split.shards names {len(ranges)} shards; "
                           "make them agree (python3 -m src.reshard N rewrites both)")
    # An empty shard0 at 0 stands before the first shard, so that a gap at the start is found like any other.
    for before, shard in itertools.pairwise([ShardRange(0, count, 0, 0), *ranges]):
        if shard.start < before.stop:
            raise DatasetError(f"split.shards: '{shard.key}' [{shard.start}, {shard.stop}) overlaps '{before.key}' "
                               f"[{before.start}, {before.stop}) on records {shard.start}.."
                               f"{min(before.stop, shard.stop) - 1}; start '{shard.key}' at {before.stop} or later")
        if shard.start > before.stop and not allow_gaps:
            after = f"after '{before.key}'" if before.number else "before the first shard"
            raise DatasetError(f"split.shards: records {before.stop}..{shard.start - 1} are in no shard (gap "
                               f"{after}, before '{shard.key}'); start '{shard.key}' at {before.stop} or set "
                               "split.allow_gaps: true")
    return tuple(ranges)


@dataclass(frozen=True)
class SplitParams:
    """``count`` shards whose ranges are ordered, disjoint and (unless ``allow_gaps``) contiguous from 0."""

    count: int
    shards: tuple[ShardRange, ...]
    allow_gaps: bool = False
    strategy: str = "contiguous"
    seed: int = 0
    even: bool = False  # split.shards left out: cut evenly once the record count is known

    @classmethod
    def parse(cls, value: object) -> SplitParams:
        section = _mapping(value, "split", ("count", "shards", "allow_gaps", "strategy", "seed"))
        strategy = section.get("strategy", cls.strategy)
        if strategy not in STRATEGIES:
            raise DatasetError(f"split.strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
        seed = _integer(section.get("seed", cls.seed), "split.seed", 0)
        count = _integer(section.get("count"), "split.count")
        allow_gaps = _boolean(section.get("allow_gaps", cls.allow_gaps), "split.allow_gaps")
        if "shards" not in section:
            return cls(count, (), allow_gaps, strategy, seed, even=True)
        return cls(count, _shard_ranges(section["shards"], count, allow_gaps), allow_gaps, strategy, seed)

    def for_records(self, records: int) -> SplitParams:
        """This sharding over ``records`` merged records: with split.shards left out, ``count`` even shards."""
        if not self.even:
            return self
        if records < self.count:
            raise DatasetError(f"split.count {self.count} is more than the {records} merged records; choose at most "
                               f"{records} shards")
        shards = tuple(ShardRange(number, self.count, start, stop)
                       for number, (start, stop) in enumerate(even_ranges(records, self.count), 1))
        return replace(self, shards=shards, even=False)

    def check_records(self, records: int) -> None:
        last = self.shards[-1]
        if last.stop > records:
            raise DatasetError(f"split.shards.{last.key}: stop {last.stop} is past the end of the merged data "
                               f"({records} records); set it to at most {records} (python3 -m src.reshard "
                               f"{self.count} does)")
        if last.stop < records and not self.allow_gaps:
            raise DatasetError(f"split.shards: records {last.stop}..{records - 1} are in no shard (after "
                               f"'{last.key}'); set its stop to {records} (python3 -m src.reshard {self.count} "
                               "does) or set split.allow_gaps: true")


@dataclass(frozen=True)
class CardParams:
    """The dataset card's title and declared license (default: the sources')."""

    pretty_name: str
    license: str | None = None

    @classmethod
    def parse(cls, value: object) -> CardParams:
        return cls(**_section(value, "card", {"pretty_name": _string, "license": _license}, required=("pretty_name",)))


@dataclass(frozen=True)
class Params:
    raw: RawParams
    merge: MergeParams
    near_duplicates: NearDuplicateParams
    split: SplitParams
    contamination: ContaminationParams
    card: CardParams


def read_params_file(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"{path}: params file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: cannot read ({error})") from None
    return parse_params_text(text, path)


def parse_params_text(text: str, path: Path) -> dict:
    """The params document (yaml.safe_load only). A key that is not a section is left for other tools, unless it
    looks like a typo of one."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise DatasetError(f"{path}{line}: not valid YAML ({getattr(error, 'problem', error)})") from None
    except (ValueError, RecursionError) as error:  # a value YAML cannot construct, e.g. the date 2024-13-01
        raise DatasetError(f"{path}: not valid YAML ({error}); quote a value that is meant as text") from None
    known = (*SECTIONS, "near_duplicates", "contamination")  # the last two have defaults for every value
    for key in _mapping(document, str(path)):
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        if key not in known and close:
            raise DatasetError(f"{path}: unknown top-level key {key!r}; did you mean '{close[0]}'?")
    for key in SECTIONS:
        if key not in document:
            raise DatasetError(f"{path}: section '{key}' is missing")
    return document


def load_params(path: Path) -> Params:
    document = read_params_file(path)
    return Params(RawParams.parse(document["raw"]), MergeParams.parse(document["merge"]),
                  NearDuplicateParams.parse(document.get("near_duplicates", {})), SplitParams.parse(document["split"]),
                  ContaminationParams.parse(document.get("contamination", {})), CardParams.parse(document["card"]))

"""The databricks-dolly-15k-ja record schema that every stage agrees on: a module of its own, so that changing how
sources are read reruns only the stage that reads them."""
from __future__ import annotations

FIELDS = ("index", "instruction", "input", "output", "category")
CATEGORIES = ("open_qa", "general_qa", "classification", "closed_qa", "brainstorming", "information_extraction",
              "summarization", "creative_writing")
CATEGORY_CODES = {category: code for code, category in enumerate(CATEGORIES)}
# The raw stage writes NAME.jsonl per source plus this manifest of their order and counts; merge reads it.
RAW_MANIFEST = "sources.json"

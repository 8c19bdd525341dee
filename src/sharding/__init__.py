"""Cutting the merged records into shards: strategies, the shard writer, tables and metrics, the card."""

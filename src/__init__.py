"""Stages and shared modules of the dolly-ja DVC pipeline (raw -> merge -> split)."""

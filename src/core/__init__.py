"""What every stage shares: errors, the typed params, the record schema, progress bars, dvc.yaml deps."""

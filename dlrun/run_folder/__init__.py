"""What a run writes into its folder and reads back: summary.json, metrics.jsonl, checkpoints, provenance."""

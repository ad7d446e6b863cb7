"""Records: what a run writes and every reader reads, below the tracks, the runner and the reports.

cells (suite → cells and their keys), schema (the record a finished cell becomes), store
(crash-safe JSONL), env (the environment fingerprint), device (which device a suite runs on).
Nothing here imports context, the tracks, the runner, the reports or the benches.
"""

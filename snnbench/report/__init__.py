"""Reports: tables, figures, comparisons and the leaderboard, read from records (never from models)."""

# The formats each writer knows, importable without pandas: the command line lists them in --help.
TABLE_FORMATS = ("rich", "md", "csv", "html", "latex")
EXPORT_FORMATS = ("csv", "parquet", "jsonl")

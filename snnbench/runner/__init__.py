"""The runner: a suite's cells through an executor into the results store."""

# The executors ``snnbench run --executor`` offers, importable without loading the runner.
EXECUTORS = ("local", "ray")

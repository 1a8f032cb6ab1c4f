"""pytest's entry point for this repository: registers the test machinery, tests/harness.py (its hooks, the
fixture ``executed_notebook``, the stand-ins and the re-run of every notebook cell)."""

pytest_plugins = ["tests.harness"]

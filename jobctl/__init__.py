"""jobctl: a command-line job scheduler with history, retries and exactly-once fires.

The package is laid out as rooms; each module's docstring says what it holds: models,
schedule and planner are pure, store/ persists, runner/executor run jobs, cli/ parses and renders.
"""

__version__ = "0.1.0"

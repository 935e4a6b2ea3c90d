"""Performance suites against named peers (not tests: nothing here asserts a time)."""

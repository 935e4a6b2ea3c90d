"""Experiment registry, runner and report."""

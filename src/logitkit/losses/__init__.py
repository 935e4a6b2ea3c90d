"""Losses: ``(input, target) -> loss`` functions with their Modules side by side."""

"""Corrections applied to a trained model's outputs (prior adjustment, CAN)."""

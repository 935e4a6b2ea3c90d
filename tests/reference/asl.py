"""Float64 oracle for the ASL baseline, element by element from the paper's formula (Ridnik et al., 2021)."""

from __future__ import annotations

import math


def asl_elementwise(s: float, y: float, gamma_neg: float, gamma_pos: float, clip: float) -> float:
    p = 1.0 / (1.0 + math.exp(-s))
    positive = (1.0 - p) ** gamma_pos * math.log(p)
    p_m = max(p - clip, 0.0)
    negative = p_m**gamma_neg * math.log(1.0 - p_m)
    return -(y * positive + (1.0 - y) * negative)


def asl_mean(scores, targets, gamma_neg=4.0, gamma_pos=0.0, clip=0.05) -> float:
    values = [
        asl_elementwise(s, y, gamma_neg, gamma_pos, clip)
        for row_s, row_y in zip(scores, targets, strict=True)
        for s, y in zip(row_s, row_y, strict=True)
    ]
    return sum(values) / len(values)

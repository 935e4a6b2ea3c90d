"""Independent float64 reference implementations ("oracles").

Written from the formulas in ``shared/spec`` with NumPy and plain Python (explicit loops,
``math.fsum``), never by calling the code under test. Slow on purpose: clarity over speed.
"""

"""Score-vector operators (no targets): softmax family, smooth approximations, soft top-k."""

"""Small models the theory produces (closed-form classifier, attention, VAE)."""

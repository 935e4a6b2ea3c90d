"""Dataset registry: real datasets shipped by package registries, with provenance."""

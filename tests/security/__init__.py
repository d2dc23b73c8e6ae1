"""Security suites: what a hostile tenant tries against a real cluster, and what stops it."""

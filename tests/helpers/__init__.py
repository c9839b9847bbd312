"""Plain helpers of the test suite (no fixtures: those are in tests/fixtures/)."""

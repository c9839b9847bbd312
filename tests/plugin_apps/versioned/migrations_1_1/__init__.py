"""The migrations of release 1.1.0 of the versioned plugin: those of 1.0.0 and one more
(tests/settings_versions.py picks them by the version of the code)."""

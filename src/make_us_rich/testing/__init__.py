"""Test doubles that speak real protocols on loopback (used by the test suite, benchmarks and
offline demos). Nothing here is imported by the production code paths."""

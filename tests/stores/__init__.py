"""Tests of the store adapters beyond the shared contract."""

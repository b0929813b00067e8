"""Tests of the bus adapters beyond the shared contract."""

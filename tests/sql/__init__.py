"""Tests of pgtop.sql: the engine driven one statement at a time, and fuzzed input."""

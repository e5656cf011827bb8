"""Tests of pgtop.wire: raw sockets, psycopg, psql and pgbench against a threaded test server."""

"""pgtop's benchmarks: pgtop, PostgreSQL 15 and supervisord side by side (`python -m bench`)."""

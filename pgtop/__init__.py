"""pgtop: PostgreSQL's postmaster, rebuilt in Python as a live model you can watch and break."""

__version__ = "0.1.0"

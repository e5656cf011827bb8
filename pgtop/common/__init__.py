"""Code shared by the supervisor and its child programs, as PostgreSQL's src/common is
"common code shared by the backend and frontend programs".

What belongs here is a contract both sides of an OS boundary must agree on, and nothing that
runs the postmaster: the shared memory layout (shmem) and the records in it
(shmem_records), the server log line (logformat), process titles (proctitle), reading
pgtop.yaml (configfile, with the time zone names the core's check hooks need: timezones) and
pg_hba.conf (hba, with the loaded rules and their matching: hba_rules), the rows published
through shared memory (activity), and the libpq client (libpq) that the walreceiver and
`pgtop init --standby-of` both speak.

Why a package of its own: the children talk to the runtime only through OS mechanisms (exit
status, shared memory, signals, sockets), never by importing it. Keeping the agreed formats
here lets a child and the supervisor use one definition without the child loading any of
the supervisor (tests/children/test_layers.py checks it). Modules here may import
pgtop.core and pgtop.storage, never pgtop.runtime, pgtop.children or pgtop.ui.
"""

"""The storage engine behind the children: pg_control, WAL, tables, checkpoints and redo.

    initdb.create_cluster_storage(datadir)      global/pg_control, pg_wal/, base/
    controlfile.read_control_file(datadir)      the postmaster's "could not find the database system"
    recovery.StartupRecovery(datadir).run()     the startup process: log lines, progress, pmsignals
    checkpoint.Checkpointer(datadir)            checkpoints, restartpoints, their log lines
    database.Database(datadir)                  a backend's tables and transactions
    sqlstorage.WalStorage(database)             pgtop.sql's Storage protocol on a Database
    archive.ready_segments / mark_done          the archiver's side of archive_status/
    wal.Wal(datadir)                            insert position, pg_switch_wal(), raw WAL writes

Files are created only by these modules, in the data directory they are given; every process
opens its own handles after it is forked (a handle must not cross a fork: the WAL insert lock
is an flock, which a forked child would share).
"""

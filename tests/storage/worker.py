"""A backend-like process for the multi-process storage tests (run with sys.executable).

Usage: worker.py DATADIR MODE NAME COUNT
  commit-loop  insert (NAME, i) for i < COUNT, one transaction each; report "committing i"
               before COMMIT and "committed i" once commit() has returned (durable)
  hold         begin, insert (NAME, i) for i < COUNT, report "holding", then wait forever
               inside the open transaction (the test kills it)
  hold-commit  like hold, then COMMIT once a line arrives on stdin; report "committed"
  hold-lock    take the WAL insert lock, report "locked", then wait forever holding it
"""

from __future__ import annotations

import sys

from pgtop.storage.database import Database
from pgtop.storage.wal import Wal


def main() -> None:
    datadir, mode, name, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if mode == "hold-lock":
        with Wal(datadir).locked():
            print("locked", flush=True)
            sys.stdin.read()
        return
    database = Database(datadir)
    if mode == "commit-loop":
        for index in range(count):
            database.begin()
            database.insert("t", [(name, index)])
            print(f"committing {index}", flush=True)
            database.commit()
            print(f"committed {index}", flush=True)
    elif mode == "hold":
        database.begin()
        database.insert("t", [(name, index) for index in range(count)])
        print("holding", flush=True)
        sys.stdin.read()
    elif mode == "hold-commit":
        database.begin()
        database.insert("t", [(name, index) for index in range(count)])
        print("holding", flush=True)
        sys.stdin.readline()
        database.commit()
        print("committed", flush=True)
    database.close()


if __name__ == "__main__":
    main()

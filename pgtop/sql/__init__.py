"""The small SQL engine backends run: a hand-written lexer, parser, analyser and evaluator for
the statements pgtop's clients use (SELECT of expressions, SHOW/SET, transactions, one-table
CREATE/INSERT/SELECT/UPDATE/DELETE, pg_stat_activity), with PostgreSQL's texts and SQLSTATEs.

`Engine(environment, storage)` implements `pgtop.wire.Executor`.
"""

from pgtop.sql.engine import Engine
from pgtop.sql.environment import (
    ColumnDef,
    Environment,
    Row,
    SettingInfo,
    Storage,
    TableDef,
)
from pgtop.sql.errors import SqlError
from pgtop.sql.memory import MemoryDatabase, MemoryEnvironment, MemoryStorage
from pgtop.sql.settings import settings_from_config, standard_settings

__all__ = [
    "ActivityRow",
    "ColumnDef",
    "Engine",
    "Environment",
    "MemoryDatabase",
    "MemoryEnvironment",
    "MemoryStorage",
    "Row",
    "SettingInfo",
    "SqlError",
    "Storage",
    "TableDef",
    "settings_from_config",
    "standard_settings",
]

"""
veto_crm.postgres: the PostgreSQL store, record sink and migrations, on the same schema as the
TypeScript adapter's (adapter/postgres): Node and Python instances on one database share one deny
history, one set of approvals and one record chain (docs/python.md, "The PostgreSQL store").
Needs the extra: ``pip install veto-crm[postgres]`` (psycopg 3).

    from veto_crm import create_veto
    from veto_crm.postgres import PostgresStore

    store = PostgresStore.connect("postgres://veto@db/crm", migrate=True)
    veto = create_veto(bundle, store=store)   # records in the same database, same transaction
"""

from .connection import APPROVAL_CHANNEL, DEFAULT_SCHEMA, PostgresStoreError
from .migrations import COMMENT_ONLY_EDITS, MigrateResult, Migration, default_migrations_dir, load_migrations, migrate
from .records import PostgresRecordSink, PostgresVerifyResult, PostgresWrittenRecord, verify_postgres_log
from .store import PostgresStore, PostgresUnit

__all__ = [
    "APPROVAL_CHANNEL",
    "COMMENT_ONLY_EDITS",
    "DEFAULT_SCHEMA",
    "MigrateResult",
    "Migration",
    "PostgresRecordSink",
    "PostgresStore",
    "PostgresStoreError",
    "PostgresUnit",
    "PostgresVerifyResult",
    "PostgresWrittenRecord",
    "default_migrations_dir",
    "load_migrations",
    "migrate",
    "verify_postgres_log",
]

"""PostgreSQL wire-protocol listener: real database drivers get the same SQL guard."""

from proxy.pgwire.listener import PgListener
from proxy.pgwire.record import StatementRecord

__all__ = ["PgListener", "StatementRecord"]

"""The project's exceptions: one family, so callers and the CLI can tell them apart.

Every message says what was wrong, where, and how to fix it.
"""


class AsterError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(AsterError):
    """A configuration value, file or override is invalid."""


class DataError(AsterError):
    """Market data is missing, malformed or inconsistent."""


class StorageError(AsterError):
    """The database is unreachable, of an unknown schema version, or a write failed."""


class SchemaMismatchError(AsterError):
    """A checkpoint's feature schema differs from the one being used."""


class ExchangeError(AsterError):
    """The exchange refused or failed a request."""


class TemporaryExchangeError(ExchangeError):
    """A network hiccup, rate limit or maintenance window: worth retrying with backoff."""


class OrderRejected(ExchangeError):
    """The exchange rejected an order (insufficient margin, bad size, ...)."""


class OrderNotFound(ExchangeError):
    """The exchange has no order with that id: it never received it (or has forgotten it)."""


class OrderStateUnknown(ExchangeError):
    """An order was sent but neither its reply nor a look-up says what became of it."""


class FlattenFailed(ExchangeError):
    """A close was sent but the position is not flat (rejected, or its state unknown); the
    protective orders were left resting."""


class RiskRefusal(AsterError):
    """The risk guard refused a decision; the message is the reason."""


class UntrustedRunError(AsterError):
    """A run directory's files are missing, changed since they were saved, or in a format that runs code."""

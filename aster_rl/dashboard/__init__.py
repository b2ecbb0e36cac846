"""The live dashboard (``aster-rl dashboard``): a read-only web view of the live tables, and the
controls (pause / resume / flatten / stop) as command rows the runner acts on.

``queries.py`` the read-only views (through the storage room), ``auth.py`` the token and the
request checks, ``app.py`` the FastAPI app (needs the ``dashboard`` extra), ``static/`` the
page (plain ES modules, the vendored chart library). Never imports a broker.
"""

from aster_rl.dashboard.queries import DashboardStore, Market

__all__ = ["DashboardStore", "Market"]

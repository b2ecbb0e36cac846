"""``aster-rl data ...``: synthesize, import and download market data into the database."""

from __future__ import annotations

from aster_rl.cli import data_download, data_import, data_synth


def register(sub) -> None:
    p = sub.add_parser("data", help="synthesize, import or download market data")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True
    data_synth.register(dsub)
    data_import.register(dsub)
    data_download.register(dsub)

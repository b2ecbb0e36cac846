"""Pattern mining and the pattern library.

- :mod:`aster_rl.patterns.language` — a pattern: a conjunction of conditions over feature
  columns, a side and an exit profile, with a readable generated name;
- :mod:`aster_rl.patterns.stats` — trade statistics (Wilson bound, profit factor,
  expectancy) and the library status rule;
- :mod:`aster_rl.patterns.outcomes` — trade outcomes of fixed-rule entries through the
  accounting core's arithmetic;
- :mod:`aster_rl.patterns.miner` — bounded enumeration, circular-shift p-values and the
  Benjamini–Hochberg correction;
- :mod:`aster_rl.patterns.library` — the library: patterns with statistics, updates from
  closed trades, status changes and their history.
"""

from aster_rl.patterns.language import Condition, Pattern
from aster_rl.patterns.stats import PatternStats, Status, compute_stats, status_of, wilson_lower_bound

__all__ = ["Condition", "Pattern", "PatternStats", "Status", "compute_stats", "status_of", "wilson_lower_bound"]

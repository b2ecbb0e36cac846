"""Market data: the bundle, timeframes, the synthetic market, file import and exchange download."""

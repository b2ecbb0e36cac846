"""The exchange: the ccxt REST client and the websocket watcher (the only home of ccxt)."""

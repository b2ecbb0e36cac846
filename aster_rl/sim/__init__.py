"""Simulation: the accounting core and its kernels, price arrays, the observation, the backtester."""

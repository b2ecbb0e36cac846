"""Secrets never reach logs, the database or printed output; the live / predictions CLI."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from aster_rl.cli import main
from aster_rl.config import DataConfig, EnvConfig, load_secrets
from aster_rl.exchange.client import ExchangeClient, wallet_address
from aster_rl.testing.fake_exchange import FakeAsterExchange
from aster_rl.live.bars import LivePrices
from aster_rl.live.real_broker import RealBroker
from aster_rl.live.runner import LiveRunner
from aster_rl.live.sources import ExchangeSource
from factories import make_market
from live_helpers import FixedPolicy, make_db, permissive_live
from test_restart_and_exchange import FEATS

PLANTED = "0x" + "9f" * 32  # a fake key planted in the environment


@pytest.mark.parametrize("argv,match", [
    (["live", "run", "--run", "x", "--real"], "confirmation"),
    (["live", "run", "--run", "x", "--real", "--confirm", "yes"], "confirmation"),
    (["live", "run", "--run", "x", "--confirm", "I-UNDERSTAND"], "needs --real"),
])
def test_real_without_flag_or_confirmation_refuses(argv, match, capsys, monkeypatch):
    monkeypatch.setenv("ASTER_PRIVATE_KEY", PLANTED)
    assert main(argv) == 2
    assert match in capsys.readouterr().err


def test_real_without_keys_refuses(capsys, monkeypatch):
    monkeypatch.delenv("ASTER_PRIVATE_KEY", raising=False)
    assert main(["live", "run", "--run", "x", "--real", "--confirm", "I-UNDERSTAND"]) == 2
    assert "ASTER_PRIVATE_KEY" in capsys.readouterr().err


def test_live_stop_writes_the_kill_file(tmp_path, capsys):
    kill = tmp_path / "data" / "KILL"
    assert main(["--set", f"live.kill_file='{kill}'", "live", "stop"]) == 0
    assert kill.exists() and "kill file written" in capsys.readouterr().out


def test_planted_key_never_in_logs_db_or_output(tmp_path, capsys, caplog, monkeypatch):
    monkeypatch.setenv("ASTER_PRIVATE_KEY", PLANTED)
    monkeypatch.setenv("ASTER_WALLET_ADDRESS", wallet_address(PLANTED))
    caplog.set_level(logging.DEBUG)
    market = make_market(1_000, seed=9)
    start = market.candles.index[900]
    dbfile = tmp_path / "live.db"
    with FakeAsterExchange(market, now=start + pd.Timedelta(seconds=30)) as fake:
        cfg = DataConfig(api_url=fake.url, rate_limit_ms=0, retry_backoff_s=0, max_retries=3, database_url=f"sqlite:///{dbfile}")
        client = ExchangeClient.from_config(cfg, with_secrets=True, rate_limit_ms=0)
        assert load_secrets().has_trading_keys
        db = make_db(tmp_path)
        source = ExchangeSource(client, db, cfg, history_bars=700, poll_interval_s=60, clock=fake.now,
                                sleep=lambda s: fake.set_now(fake.now_ms + int(s * 1000)))
        prices = LivePrices("5m")
        broker = RealBroker(client, "ASTER/USDT:USDT", EnvConfig(), permissive_live(tmp_path), prices)
        fake.fail_next(1, 503, path="/fapi/v3/order")  # an error path is logged too
        LiveRunner(FixedPolicy(n_lev=3), source, broker, db, env_cfg=EnvConfig(), live_cfg=permissive_live(tmp_path, stale_after_bars=3),
                   features_cfg=FEATS, session_id="secret-test", mode="real", prices=prices).run(max_bars=15)
        assert fake.account.fills  # it did trade, so the signed paths ran
        db.dispose()
    assert main(["--set", f"data.database_url='sqlite:///{dbfile}'", "config", "show"]) == 0
    assert main(["--set", f"data.database_url='sqlite:///{dbfile}'", "predictions", "--session", "secret-test"]) == 0
    assert main(["live", "run", "--run", "x", "--real"]) == 2
    out = capsys.readouterr()
    body = PLANTED[2:]
    assert body not in caplog.text and PLANTED not in caplog.text
    assert body not in out.out and body not in out.err
    for f in tmp_path.rglob("*.db*"):
        assert body.encode() not in f.read_bytes(), f
    assert "private key set (hidden)" in out.out
    assert "closed trades" in out.out or "no closed trades" in out.out


def test_predictions_command_lists_decisions_with_running_win_rate(tmp_path, capsys):
    from aster_rl.live.sources import ReplaySource
    from live_helpers import paper_runner

    dbfile = tmp_path / "p.db"
    from aster_rl.storage import Database

    db = Database(f"sqlite:///{dbfile}")
    db.init_schema()
    paper_runner(FixedPolicy(n_lev=4), ReplaySource(make_market(900, seed=4), 700, 890), db, tmp_path, features="batch").run()
    assert main(["--set", f"data.database_url='sqlite:///{dbfile}'", "predictions", "--limit", "5"]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert lines[0].startswith("time (UTC)") and len(lines) == 1 + 5 + 1
    assert "closed trades" in lines[-1] and "PnL after costs" in lines[-1]

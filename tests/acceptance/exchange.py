"""Acceptance of ``mmflow execute`` on a real exchange account: Binance's USD-M testnet.

    export MMFLOW_API_KEY=... MMFLOW_API_SECRET=...      # testnet keys (testnet.binancefuture.com)
    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python -m tests.acceptance.exchange --target testnet
    .venv/bin/python -m tests.acceptance.exchange --target sim   # the same checks on exchange-sim

Not part of ``make test`` (CI has no exchange and no keys); ``--target sim`` runs the same
script against ``mmflow exchange-sim`` so the script itself is tested
(``tests/integration/test_acceptance_script.py``). Each check prints ``PASS`` or ``FAIL`` with
what it saw; the exit code is the number of failures. It trades the minimum the filters allow
(about 100 USDT of BTCUSDT on today's testnet) and leaves the account as it found it: flat, no
order of its own resting. Use an account (or sub-account) with no other BTCUSDT orders: Binance's
countdown cancels every order of the symbol.

What only the simulator can show (a forced websocket drop, a burst of 429s, a request timeout,
a clock beyond recvWindow) is left to ``tests/integration/test_execute.py``: forcing them on a
real exchange would put the account's API key at risk of a ban.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_UP, Decimal
from pathlib import Path
from typing import Any

from mmflow.models import POST_ONLY_REJECT, CancelAllIntent, Fill, HedgeIntent, OrderUpdate, Position
from tests.integration.exchange_sim_client import KEY, SECRET, call
from tests.integration.kafka_broker import create_topic
from tests.integration.test_execute import Intents
from tests.integration.test_kafka_e2e import REPO, mmflow, topic_sets
from tests.integration.trading_loop import BTC, BTC_FRAMES, EXCHANGE_INFO, Proc
from tests.integration.trading_loop import until as polled

TESTNET_REST = "https://testnet.binancefuture.com"
SYMBOL = "BTCUSDT"
COUNTDOWN_S = 10
#: Polling the account's REST endpoints twice a second stays far inside the testnet's weight budget.
POLL_S = 0.5


@dataclass
class Account:
    """Where the checks look: a REST base URL and the account's key and secret."""

    base: str
    key: str
    secret: str

    def signed(self, method: str, path: str, **params: Any) -> Any:
        status, _, body = call(self, method, path, params, signed=True, key=self.key, secret=self.secret)  # type: ignore[arg-type]
        if status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {status} {body}")
        return body

    def public(self, path: str, **params: Any) -> Any:
        status, _, body = call(self, "GET", path, params)  # type: ignore[arg-type]
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status} {body}")
        return body

    def touch(self) -> tuple[Decimal, Decimal]:
        t = self.public("/fapi/v1/ticker/bookTicker", symbol=SYMBOL)
        return Decimal(t["bidPrice"]), Decimal(t["askPrice"])

    def open_ids(self) -> set[str]:
        return {o["clientOrderId"] for o in self.signed("GET", "/fapi/v1/openOrders", symbol=SYMBOL)}

    def position(self) -> Decimal:
        [risk] = [
            r for r in self.signed("GET", "/fapi/v2/positionRisk", symbol=SYMBOL) if r["symbol"] == SYMBOL
        ]
        return Decimal(risk["positionAmt"])


@dataclass(frozen=True)
class Filters:
    tick: Decimal
    step: Decimal
    min_qty: Decimal
    min_notional: Decimal

    @classmethod
    def of(cls, account: Account) -> Filters:
        info = account.public("/fapi/v1/exchangeInfo")
        [sym] = [s for s in info["symbols"] if s["symbol"] == SYMBOL]
        f = {x["filterType"]: x for x in sym["filters"]}
        notional = f.get("MIN_NOTIONAL", {}).get("notional", "0")
        return cls(
            Decimal(f["PRICE_FILTER"]["tickSize"]),
            Decimal(f["LOT_SIZE"]["stepSize"]),
            Decimal(f["LOT_SIZE"]["minQty"]),
            Decimal(notional),
        )

    def size_at(self, price: Decimal) -> Decimal:
        """The smallest size the filters take at ``price``, with 10 % room for the price to move."""
        need = self.min_notional * Decimal("1.1") / price
        steps = (need / self.step).to_integral_value(ROUND_CEILING)
        return max(self.min_qty, steps * self.step)

    def down(self, px: Decimal) -> Decimal:
        return (px / self.tick).to_integral_value(ROUND_DOWN) * self.tick

    def up(self, px: Decimal) -> Decimal:
        return (px / self.tick).to_integral_value(ROUND_UP) * self.tick


class Checks:
    """Each check once, PASS or FAIL, counted."""

    def __init__(self) -> None:
        self.failed = 0

    def check(self, name: str, fn: Callable[[], str]) -> None:
        try:
            print(f"PASS  {name}: {fn()}", flush=True)
        except Exception as err:  # a check that fails prints why and the next one runs
            self.failed += 1
            print(f"FAIL  {name}: {type(err).__name__}: {err}", flush=True)


def until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    return polled(check, timeout, what, every=POLL_S)


class Session:
    """One acceptance session: its topics, the execute command, and the intents it sends."""

    def __init__(self, account: Account, urls: list[str], bootstrap: str, tmp: Path, qty: Decimal) -> None:
        prefix = f"accept-{time.time_ns()}"
        for name in ("fills", "intents", "positions", "orders", "dlq", "md", "control", "venue-state"):
            create_topic(bootstrap, f"{prefix}.{name}", partitions=1)
        self.sets = [
            *topic_sets(prefix),
            f"kafka.bootstrap_servers={bootstrap}",
            f"strategy.quoting.base_size={qty}",
        ]
        self.account, self.urls, self.tmp, self.qty = account, urls, tmp, qty
        self.env = {"MMFLOW_API_KEY": account.key, "MMFLOW_API_SECRET": account.secret}
        self.intents = Intents(self.sets)
        self.logs = 0

    def args(self) -> list[str]:
        base = ["execute", "--venue", "binance-usdm", "--symbols", SYMBOL, "--countdown", str(COUNTDOWN_S)]
        return mmflow(*base, *self.urls, *[a for s in self.sets for a in ("--set", s)])

    def start(self) -> Proc:
        self.logs += 1
        proc = Proc(self.args(), self.tmp / f"execute{self.logs}.log", self.env)
        proc.wait_for("execute: ready", 120)
        return proc

    def records(self, topic: str, kind: type) -> list[Any]:
        return [r for r in self.intents.records(topic) if isinstance(r, kind)]

    def hedge(self, side: str, limit: Decimal) -> HedgeIntent:
        bid, ask = self.account.touch()
        h = HedgeIntent(
            market=BTC,
            ts=time.time_ns() // 1000,
            intent_id=self.intents.next_id(),
            side=side,  # type: ignore[arg-type]
            qty=self.qty,
            limit_px=limit,
            best_bid=bid,
            best_ask=ask,
            inventory=Decimal(0),
        )
        self.intents.send(h)
        return h


def run_checks(account: Account, urls: list[str], bootstrap: str, tmp: Path) -> int:
    checks = Checks()
    f = Filters.of(account)
    bid, ask = account.touch()
    qty = f.size_at(ask)
    start_position = account.position()
    s = Session(account, urls, bootstrap, tmp, qty)
    ex: list[Proc] = []

    def ready() -> str:
        ex.append(s.start())
        return (
            f"filters tick {f.tick} step {f.step} minQty {f.min_qty} minNotional {f.min_notional}; size {qty}"
        )

    def quotes_rest() -> str:
        s.intents.quote(f.down(bid * Decimal("0.97")), f.up(ask * Decimal("1.03")), qty)
        ids = {s.intents.cid(1, "b"), s.intents.cid(1, "s")}
        until(lambda: ids <= account.open_ids(), 30, f"{sorted(ids)} not resting")
        return f"resting as {sorted(ids)}"

    def replaced() -> str:
        s.intents.quote(f.down(bid * Decimal("0.96")), f.up(ask * Decimal("1.04")), qty)
        new, old = (
            {s.intents.cid(2, "b"), s.intents.cid(2, "s")},
            {s.intents.cid(1, "b"), s.intents.cid(1, "s")},
        )
        until(lambda: (o := account.open_ids()) >= new and not (o & old), 30, "not replaced")
        return f"{sorted(old)} cancelled, {sorted(new)} resting"

    def post_only() -> str:
        b, a = account.touch()
        q = s.intents.quote(f.up(a + f.tick * 5), None, qty)
        got = until(
            lambda: [
                u
                for u in s.records(s.intents.kafka.orders_topic, OrderUpdate)
                if u.intent_id == q.intent_id and u.status == "rejected"
            ],
            30,
            "no reject",
        )
        assert got[0].reason == POST_ONLY_REJECT, got[0].reason
        return f"bid above the ask {a}: rejected {got[0].reason}"

    def hedge_fill() -> str:
        b, a = account.touch()
        h = s.hedge("buy", f.up(a * Decimal("1.002")))
        fills = until(
            lambda: [x for x in s.records(s.intents.kafka.fills_topic, Fill) if x.intent_id == h.intent_id],
            30,
            "no fill",
        )
        position = account.position()
        until(
            lambda: (
                (p := s.records(s.intents.kafka.positions_topic, Position)) and p[-1].position == position
            ),
            30,
            f"no published position equal to positionRisk {position}",
        )
        return f"{len(fills)} fill(s) {[x.fill_id for x in fills]}, fee {sum(x.fee for x in fills)}; position {position} = positionRisk"

    def flatten() -> str:
        b, _ = account.touch()
        s.hedge("sell", f.down(b * Decimal("0.998")))
        until(lambda: account.position() == start_position, 30, "not back to the starting position")
        return f"back to {start_position}"

    def cancel_all() -> str:
        s.intents.send(CancelAllIntent(market=BTC, ts=time.time_ns() // 1000, intent_id=s.intents.next_id()))
        until(
            lambda: not {i for i in account.open_ids() if i.startswith("mmf-")}, 30, "orders of the bot left"
        )
        return "no order of the bot resting"

    def sigkill() -> str:
        s.intents.quote(f.down(bid * Decimal("0.97")), f.up(ask * Decimal("1.03")), qty)
        until(lambda: any(i.startswith("mmf-") for i in account.open_ids()), 30, "no quote resting")
        ex[-1].kill()
        killed = time.monotonic()
        until(
            lambda: not {i for i in account.open_ids() if i.startswith("mmf-")}, COUNTDOWN_S + 10, "countdown"
        )
        return f"the exchange cancelled them {time.monotonic() - killed:.1f} s after SIGKILL (countdown {COUNTDOWN_S} s)"

    def restart() -> str:
        ex.append(s.start())
        line = next(ln for ln in ex[-1].text().splitlines() if "reconciled" in ln)
        code = ex[-1].stop()
        assert code == 0, ex[-1].text()[-1500:]
        return line.split("execute: ", 1)[-1]

    def bad_secret() -> str:
        env = {**os.environ, **s.env, "MMFLOW_API_SECRET": "not-the-secret-" + str(time.time_ns())}
        done = subprocess.run(s.args(), cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
        lines = [ln for ln in done.stderr.splitlines() if ln.startswith("mmflow")]
        assert done.returncode == 2 and len(lines) == 1, (done.returncode, done.stderr[-800:])
        assert env["MMFLOW_API_SECRET"] not in done.stdout + done.stderr
        return lines[0]

    try:
        for name, fn in [
            ("start: filters checked, reconciled", ready),
            ("quotes become post-only orders with derived ids", quotes_rest),
            ("a new quote replaces the resting one", replaced),
            ("a crossing quote is a post-only reject", post_only),
            ("a hedge fills; the position published is positionRisk", hedge_fill),
            ("a hedge back to flat", flatten),
            ("cancel-all", cancel_all),
            ("SIGKILL: the countdown cancels", sigkill),
            ("a restart reconciles and stops cleanly", restart),
            ("a bad secret: one line, exit 2", bad_secret),
        ]:
            checks.check(name, fn)
    finally:
        for p in ex:
            p.kill()
    print(f"{checks.failed} check(s) failed" if checks.failed else "all checks passed")
    return checks.failed


def _sim_account() -> tuple[Account, list[str], Callable[[], None]]:
    from mmflow.connectors.exchange_sim.app import SimConfig
    from tests.integration.exchange_sim_client import SimServer

    sim = SimServer(SimConfig("binance-usdm", BTC_FRAMES, KEY, SECRET, speed=0, exchange_info=EXCHANGE_INFO))
    sim.wait_replayed()
    return Account(sim.base, KEY, SECRET), ["--rest-url", sim.base, "--ws-url", sim.ws_base], sim.stop


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", choices=["testnet", "sim"], required=True)
    args = ap.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    if args.target == "testnet":
        key, secret = os.environ.get("MMFLOW_API_KEY", ""), os.environ.get("MMFLOW_API_SECRET", "")
        if not key or not secret:
            print("acceptance: set MMFLOW_API_KEY and MMFLOW_API_SECRET to testnet keys", file=sys.stderr)
            return 2
        account, urls, done = Account(TESTNET_REST, key, secret), ["--testnet"], lambda: None
    else:
        account, urls, done = _sim_account()
    try:
        with tempfile.TemporaryDirectory(prefix="mmflow-accept-") as tmp:
            return run_checks(account, urls, bootstrap, Path(tmp))
    finally:
        done()


if __name__ == "__main__":
    sys.exit(main())

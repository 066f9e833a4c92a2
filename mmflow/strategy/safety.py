"""Trading safety beyond the analysis: the stale-data guard, the hard position limit, the loss
limit and the operator's kill switch.

Each is a latch with a clear way out: fresh data lifts the stale guard by itself; a kill-switch
or reconciliation halt is lifted only by an operator's ``resume``, a loss-limit halt only by a
``resume`` that says so (``--clear-loss-limit``).
"""

from __future__ import annotations

from decimal import Decimal

from mmflow.config import SafetyConfig


class SafetyGuards:
    __slots__ = (
        "cfg",
        "stale",
        "operator_halted",
        "loss_halted",
        "reconcile_halted",
        "reconcile_halts",
        "last_data_us",
        "stale_engagements",
        "loss_halts",
        "operator_halts",
        "stale_after_us",
    )

    def __init__(self, cfg: SafetyConfig) -> None:
        self.cfg = cfg
        self.stale = False
        self.operator_halted = False
        self.loss_halted = False
        self.reconcile_halted = False
        self.reconcile_halts = 0
        self.last_data_us: int | None = None
        self.stale_engagements = 0
        self.loss_halts = 0
        self.operator_halts = 0
        # The one copy of the stale threshold: the maker, the runtime and the live timer ask here.
        self.stale_after_us = int(cfg.stale_after_s * 1_000_000)

    @property
    def blocked(self) -> bool:
        """No quoting and no hedging while any of these holds."""
        return self.stale or self.operator_halted or self.loss_halted or self.reconcile_halted

    def silence_budget_us(self) -> int | None:
        """How long after the last data the guard fires if nothing else arrives; None when it
        cannot fire (disabled, already latched, no data yet). The live wall-clock timer uses it."""
        if not self.cfg.stale_enabled or self.stale or self.last_data_us is None:
            return None
        return self.stale_after_us

    def stale_since(self, now_us: int) -> int | None:
        """If data has been missing for too long at ``now_us``, latch the guard and return the
        instant it went stale; None when fresh enough or already latched."""
        if not self.cfg.stale_enabled or self.stale or self.last_data_us is None:
            return None
        became = self.last_data_us + self.stale_after_us
        if now_us <= became:
            return None
        self.stale = True
        self.stale_engagements += 1
        return became

    def data_arrived(self, ts_recv: int, ts_exchange: int) -> bool | None:
        """Note a market event; True when it lifts the guard, False when it is itself too old
        (received long after the exchange stamped it) and latches the guard, else None."""
        if self.cfg.stale_enabled and ts_recv - ts_exchange > self.stale_after_us:
            if self.stale:
                return None
            self.stale = True
            self.stale_engagements += 1
            return False
        self.last_data_us = ts_recv
        if self.stale:
            self.stale = False
            return True
        return None

    def position_sides(self, inventory: Decimal) -> tuple[bool, bool]:
        """(bid allowed, ask allowed): past the hard limit, never add to the position."""
        if not self.cfg.position_limit_enabled:
            return True, True
        limit = self.cfg.max_position_base
        return inventory < limit, inventory > -limit

    def room(self, longest: Decimal, shortest: Decimal) -> tuple[Decimal | None, Decimal | None]:
        """How much more may be bid and offered with the worst case inside the hard limit:
        ``longest`` is the position plus every buy that could still fill, ``shortest`` the
        position less every such sell. None: no limit."""
        if not self.cfg.position_limit_enabled:
            return None, None
        limit = self.cfg.max_position_base
        return limit - longest, limit + shortest

    def check_loss(self, total_pnl: Decimal) -> bool:
        """Latch the loss halt when realized + unrealized PnL is at or below the floor; True
        on the transition."""
        if not self.cfg.loss_limit_enabled or self.loss_halted or total_pnl > self.cfg.loss_limit_quote:
            return False
        self.loss_halted = True
        self.loss_halts += 1
        return True

    def halt(self) -> bool:
        if self.operator_halted:
            return False
        self.operator_halted = True
        self.operator_halts += 1
        return True

    def reconcile_halt(self) -> bool:
        """Latch the books/venue mismatch halt; True on the transition."""
        if self.reconcile_halted:
            return False
        self.reconcile_halted = True
        self.reconcile_halts += 1
        return True

    def resume(self, clear_loss_limit: bool = False) -> bool:
        """Lift the operator and reconciliation halts, and the loss-limit halt only when asked
        explicitly (the stale guard lifts itself on fresh data). True when something lifted."""
        lifted = self.operator_halted or self.reconcile_halted or (clear_loss_limit and self.loss_halted)
        self.operator_halted = self.reconcile_halted = False
        if clear_loss_limit:
            self.loss_halted = False
        return lifted

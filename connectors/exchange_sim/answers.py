"""The JSON of the account's REST answers (orders, positions, balances), in each venue's shape."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from mmflow.connectors.exchange_sim.orders import Account
from mmflow.connectors.exchange_sim.records import Order, TradeInfo, fmt


def order_json(order: Order, spot: bool) -> dict[str, Any]:
    """An order as GET/DELETE .../order print it (and USD-M's new-order answer)."""
    f = lambda d: fmt(d, spot)  # noqa: E731
    if spot:
        return {
            "symbol": order.symbol,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": order.client_id,
            "price": f(order.price),
            "origQty": f(order.qty),
            "executedQty": f(order.executed),
            "cummulativeQuoteQty": f(order.cum_quote),
            "status": order.status,
            "timeInForce": order.tif,
            "type": order.type,
            "side": order.side,
            "stopPrice": f(Decimal(0)),
            "icebergQty": f(Decimal(0)),
            "time": order.time_ms,
            "updateTime": order.update_ms,
            "isWorking": True,
            "workingTime": order.time_ms,
            "origQuoteOrderQty": f(Decimal(0)),
            "selfTradePreventionMode": "NONE",
        }
    return {
        "orderId": order.order_id,
        "symbol": order.symbol,
        "status": order.status,
        "clientOrderId": order.client_id,
        "price": f(order.price),
        "avgPrice": f(order.avg_price()),
        "origQty": f(order.qty),
        "executedQty": f(order.executed),
        "cumQty": f(order.executed),
        "cumQuote": f(order.cum_quote),
        "timeInForce": order.tif,
        "type": order.type,
        "reduceOnly": False,
        "closePosition": False,
        "side": order.side,
        "positionSide": "BOTH",
        "stopPrice": "0",
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "origType": order.type,
        "priceMatch": "NONE",
        "selfTradePreventionMode": "NONE",
        "goodTillDate": 0,
        "time": order.time_ms,
        "updateTime": order.update_ms,
    }


def spot_new_order(order: Order, resp_type: str) -> dict[str, Any]:
    """Spot's new-order answer: ACK, RESULT or FULL (the default for LIMIT and MARKET)."""
    ack = {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_id,
        "transactTime": order.time_ms,
    }
    if resp_type == "ACK":
        return ack
    result = order_json(order, True)
    for key in ("time", "updateTime", "stopPrice", "icebergQty", "isWorking", "origQuoteOrderQty"):
        result.pop(key)
    result["transactTime"] = order.time_ms
    if resp_type == "RESULT":
        return result
    f = lambda d: fmt(d, True)  # noqa: E731
    result["fills"] = [
        {
            "price": f(t.price),
            "qty": f(t.qty),
            "commission": f(t.fee),
            "commissionAsset": t.fee_asset,
            "tradeId": t.trade_id,
        }
        for t in order.trades
    ]
    return result


def trade_json(order: Order, trade: TradeInfo, spot: bool) -> dict[str, Any]:
    """One fill as USD-M ``userTrades`` / spot ``myTrades`` print it."""
    f = lambda d: fmt(d, spot)  # noqa: E731
    out: dict[str, Any] = {
        "symbol": order.symbol,
        "id": trade.trade_id,
        "orderId": order.order_id,
        "price": f(trade.price),
        "qty": f(trade.qty),
        "quoteQty": f(trade.price * trade.qty),
        "commission": f(trade.fee),
        "commissionAsset": trade.fee_asset,
        "time": trade.time_ms,
    }
    buyer = order.side == "BUY"
    if spot:
        return out | {"orderListId": -1, "isBuyer": buyer, "isMaker": trade.maker, "isBestMatch": True}
    return out | {
        "side": order.side,
        "realizedPnl": f(trade.realized),
        "positionSide": "BOTH",
        "buyer": buyer,
        "maker": trade.maker,
    }


def position_risk(account: Account, symbol: str | None) -> list[dict[str, Any]]:
    """USD-M positionRisk: one row per symbol (one-way mode)."""
    f = lambda d: fmt(d, False)  # noqa: E731
    rows = []
    for s in [symbol] if symbol else sorted(account.symbols):
        pos = account.positions.get(s)
        amount, entry = (pos.amount, pos.entry) if pos else (Decimal(0), Decimal(0))
        mark = account.marks.get(s, Decimal(0))
        rows.append(
            {
                "symbol": s,
                "positionAmt": f(amount),
                "entryPrice": f(entry),
                "breakEvenPrice": f(entry),
                "markPrice": f(mark),
                "unRealizedProfit": f(account.unrealized(s)),
                "liquidationPrice": "0",
                "leverage": "20",
                "maxNotionalValue": "1000000",
                "marginType": "cross",
                "isolatedMargin": "0",
                "isAutoAddMargin": "false",
                "positionSide": "BOTH",
                "notional": f(amount * mark),
                "isolatedWallet": "0",
                "updateTime": account.clock_ms(),
            }
        )
    return rows


def usdm_balances(account: Account) -> list[dict[str, Any]]:
    f = lambda d: fmt(d, False)  # noqa: E731
    upnl = sum((account.unrealized(s) for s in account.symbols), Decimal(0))
    rows = []
    for asset, wallet in sorted(account.balances.items()):
        pnl = upnl if asset == "USDT" else Decimal(0)
        rows.append(
            {
                "accountAlias": "sim",
                "asset": asset,
                "balance": f(wallet),
                "crossWalletBalance": f(wallet),
                "crossUnPnl": f(pnl),
                "availableBalance": f(wallet + pnl),
                "maxWithdrawAmount": f(wallet),
                "marginAvailable": True,
                "updateTime": account.clock_ms(),
            }
        )
    return rows


def usdm_account(account: Account) -> dict[str, Any]:
    f = lambda d: fmt(d, False)  # noqa: E731
    wallet = sum(account.balances.values(), Decimal(0))
    upnl = sum((account.unrealized(s) for s in account.symbols), Decimal(0))
    assets = [
        {
            "asset": b["asset"],
            "walletBalance": b["balance"],
            "unrealizedProfit": b["crossUnPnl"],
            "marginBalance": f(Decimal(b["balance"]) + Decimal(b["crossUnPnl"])),
            "availableBalance": b["availableBalance"],
            "maxWithdrawAmount": b["maxWithdrawAmount"],
            "updateTime": b["updateTime"],
        }
        for b in usdm_balances(account)
    ]
    positions = [
        {
            "symbol": p["symbol"],
            "positionSide": "BOTH",
            "positionAmt": p["positionAmt"],
            "entryPrice": p["entryPrice"],
            "unrealizedProfit": p["unRealizedProfit"],
            "notional": p["notional"],
            "leverage": p["leverage"],
            "isolated": False,
            "updateTime": p["updateTime"],
        }
        for p in position_risk(account, None)
    ]
    return {
        "feeTier": 0,
        "canTrade": True,
        "canDeposit": True,
        "canWithdraw": True,
        "multiAssetsMargin": False,
        "totalWalletBalance": f(wallet),
        "totalUnrealizedProfit": f(upnl),
        "totalMarginBalance": f(wallet + upnl),
        "availableBalance": f(wallet + upnl),
        "maxWithdrawAmount": f(wallet),
        "assets": assets,
        "positions": positions,
    }


def spot_account(account: Account) -> dict[str, Any]:
    return {
        "makerCommission": 10,
        "takerCommission": 10,
        "buyerCommission": 0,
        "sellerCommission": 0,
        "canTrade": True,
        "canWithdraw": True,
        "canDeposit": True,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": account.clock_ms(),
        "accountType": "SPOT",
        "balances": account.spot_balances(),
        "permissions": ["SPOT"],
        "uid": 1,
    }

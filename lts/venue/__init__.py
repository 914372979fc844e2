"""The local exchange: a venue on 127.0.0.1 that speaks a real exchange's protocol (issue 10).

Where it sits: beside the engine, not inside it. ``python -m lts.engine venue`` runs it; LTS (or
any client: ccxt, a user's own script) trades on it through the venue's wire protocol, exactly
as on the real exchange, so the whole path is tested offline and a strategy can be rehearsed.
:mod:`lts.venue.exchange` is its state and matching (pure, synchronous, exact decimals), fed by
bars of LTS's own pipelines; the protocol fronts sit on top of it.
"""

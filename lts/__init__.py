"""LTS: an asyncio event-driven live trading engine.

Layers, outermost first: ``api -> engine -> {plugins, persistence, bus} -> domain``.
"""

__version__ = "0.1.0"

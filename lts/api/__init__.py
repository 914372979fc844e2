"""The control plane: a FastAPI app served by the ``api`` core plugin on the engine's own loop.

``create_app`` builds everything (nothing at import time): routes, middleware, the app's own
Prometheus registry. The API reads the engine; it is admitted, not trusted (ARCHITECTURE §4).
"""

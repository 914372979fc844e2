"""Route modules, one per resource (``/api/v1/...``) plus the operational endpoints."""

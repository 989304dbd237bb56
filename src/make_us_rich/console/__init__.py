"""The forecast console: people sign in, see each symbol's candles with the served forecast and
the model registry, manage API tokens; scripts call ``/api/v1/forecast/{symbol}`` against a
monthly quota. A thin FastAPI layer over plain modules (:mod:`.db`, :mod:`.auth`,
:mod:`.tokens`, :mod:`.quota`, :mod:`.gateway`, :mod:`.registry`) on SQLite or PostgreSQL."""

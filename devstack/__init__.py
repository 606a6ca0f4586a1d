"""The local stack of ``./dev up`` (Redis or a stand-in, the API, two workers); not installed."""

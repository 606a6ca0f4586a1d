"""Example tasks served by the local stack (``./dev up``)."""

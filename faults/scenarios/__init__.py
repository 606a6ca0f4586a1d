"""The scenarios, in the issue's numbering. Each is ``async def run(env) -> None`` filling
``env.result``; :mod:`faults.__main__` runs them in order."""

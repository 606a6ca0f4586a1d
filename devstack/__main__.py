"""``python -m devstack`` (``./dev up``): run the local stack."""

from devstack.stack import main

if __name__ == "__main__":
    raise SystemExit(main())

# A package, so this folder's conftest is `browser.conftest` and never shadows tests/conftest.py.

"""Root conftest: loads the real-server fixtures for the whole suite.

``pytest_plugins`` is only honoured in the root conftest (pytest refuses it in nested
ones), so the fixtures of tests/servers/fixtures.py (``postgres``, ``pg_database``,
``postgres_factory``, ``openbao``, ``openbao_persistent``, ``softhsm``) are registered
here and are available to every test under tests/.
"""

pytest_plugins = ["tests.servers.fixtures"]

"""Test-suite configuration.

Its presence puts ``tests/`` on ``sys.path`` (pytest's default "prepend" import mode inserts the
directory of every conftest.py without an ``__init__.py``), so shared helper modules such as
``test_pipeline_support`` can be imported by the tests in sub-directories too.
"""

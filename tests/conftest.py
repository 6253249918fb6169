"""Test-suite plugins: pytester drives the radbench plugin in scratch projects."""

pytest_plugins = ["pytester"]

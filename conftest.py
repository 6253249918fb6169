"""Thin: load radbench's pytest plugins. Everything of substance lives in fixtures/."""

pytest_plugins = ["fixtures.options", "fixtures.session", "fixtures.grid", "fixtures.progress",
                  "fixtures.cells"]

"""radbench: how well do vision foundation models transfer to radiology?

The library half of radbench. Nothing in this package imports pytest; the pytest glue
lives in ``fixtures/``.
"""

__version__ = "0.1.0"

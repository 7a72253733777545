"""IACSeg engine: intracranial ICA calcification on non-contrast head CT.

Flow (see docs/DESIGN.md): io → preprocess → models → mapping → measure → outputs.
"""

__version__ = "0.1.0"

"""Shared code for *Transformers for Unsupervised Learning*.

One concept per module: ``attention``, ``transformer``, ``data``, ``train``,
``plots``, ``checks``, ``runtime`` and the later parts' modules. Notebooks build
each idea in plain code first, then check it equals the version here.
"""

__version__ = "0.1.0"

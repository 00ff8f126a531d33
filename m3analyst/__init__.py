"""m3analyst: analyst memos from one long-context prompt, on an embedded MSA engine.

Data flows one way: ingest -> Document -> domain facts -> prompt -> engine -> memo -> verify -> render.
"""

__version__ = "0.1.0"

"""edge: number plate recognition for roadside cameras.

The pipeline, one module per stage: capture -> detect -> read -> track -> context -> spool -> publish.
"""

__version__ = "0.1.0"

"""Plate grammars per country and grammar-constrained decoding of a reader's output.

    from edge.plates import best_path, decode
    readings = decode(best_path(frame_probs), countries=("GB",))   # best first, then alternatives
"""

from edge.plates.decode import LOOKALIKES, Decoded, Lattice, best_path, decode, match_format
from edge.plates.grammars import COUNTRIES, FORMATS, PlateFormat, fits

__all__ = ["COUNTRIES", "FORMATS", "LOOKALIKES", "Decoded", "Lattice", "PlateFormat", "best_path", "decode", "fits",
           "match_format"]

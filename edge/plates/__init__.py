"""Plate grammars per country and grammar-constrained decoding of the reader's output."""

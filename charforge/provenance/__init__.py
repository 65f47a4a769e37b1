"""Provenance: every image charforge writes says where it came from."""

from charforge.provenance.metadata import read_png_metadata, save_png

__all__ = ["read_png_metadata", "save_png"]

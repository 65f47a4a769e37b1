"""Provenance: every image charforge writes says where it came from (text metadata + invisible watermark)."""

from charforge.provenance.metadata import png_bytes, read_png_metadata, save_png

__all__ = ["png_bytes", "read_png_metadata", "save_png"]

"""Dataset readers, file formats and synthetic stereo data."""

"""Tools around a trained model: inspect what it learned, export it without phnn."""

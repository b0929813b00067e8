"""sheetstream: real-time cell-level change streams for spreadsheets."""

__version__ = "0.1.0"

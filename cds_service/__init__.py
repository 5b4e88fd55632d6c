"""IgG4-RD CDS Hooks service: consider IgG4-related disease before presuming cholangiocarcinoma."""

__version__ = "0.1.0"

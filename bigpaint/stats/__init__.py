"""Statistics that judge a field: power and cross spectra, bispectrum, one-point and morphology."""

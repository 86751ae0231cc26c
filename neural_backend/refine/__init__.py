"""Refinement with a StyleGAN2: face alignment, inversion and its losses, motion, compositing, the
preview encoder, params-only rendering and alignment calibration. Imports torch."""

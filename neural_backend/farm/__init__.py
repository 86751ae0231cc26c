"""A shot on a render farm: the shot folder and its manifest, the refine stage, progress lines and the
contact sheet. No torch."""

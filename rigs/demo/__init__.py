"""The licence-free procedural demo head: layout, blendshapes, landmarks and the rig that joins them."""

"""Image helpers shared with Blender: the sRGB curve and 8-bit PNG writing. numpy only."""

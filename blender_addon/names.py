"""Names the add-on stores in Blender data (objects, shape keys, attributes, custom properties)."""

REGION_ATTRIBUTE = "rigstyle_region"  # INT face attribute: the rig's region label per face
LANDMARK_FACES_PROP = "rigstyle_landmark_faces"  # mesh object custom property: (L,) face indices
LANDMARK_BARY_PROP = "rigstyle_landmark_bary"  # mesh object custom property: (L*3,) barycentrics
RIG_NAME_PROP = "rigstyle_rig"  # armature object custom property: the Rig's name
EXPRESSION_KEY_PREFIX = "expression."  # shape keys driven by expression coefficients
SHAPE_KEY_PREFIX = "shape."  # shape keys driven by identity (betas) coefficients
REGION_MATERIAL = "RigStyle Region Labels"  # emission material used as the region pass override
COMPOSITOR_GROUP = "RigStyle Compositor"
REFINED_IMAGE = "RigStyle Refined"

"""Names the add-on stores in Blender data (objects, shape keys, attributes, custom properties)."""

REGION_ATTRIBUTE = "rigstyle_region"  # INT face attribute: the rig's region label per face
LANDMARK_FACES_PROP = "rigstyle_landmark_faces"  # mesh object custom property: (L,) face indices
LANDMARK_BARY_PROP = "rigstyle_landmark_bary"  # mesh object custom property: (L*3,) barycentrics
RIG_NAME_PROP = "rigstyle_rig"  # armature object custom property: the Rig's name
HAND_MEAN_PROP = "rigstyle_hand_mean"  # armature object custom property: (2 * 45,) SMPL-X mean hand pose
EXPRESSION_KEY_PREFIX = "expression."  # shape keys driven by expression coefficients
SHAPE_KEY_PREFIX = "shape."  # shape keys driven by identity (betas) coefficients
REGION_MATERIAL = "RigStyle Region Labels"  # emission material used as the region pass override
MOTION_ATTRIBUTE = "rigstyle_motion"  # FLOAT_VECTOR point attribute: pixel offset to the previous frame
MOTION_MATERIAL = "RigStyle Motion"  # emission material used as the motion pass override
ALBEDO_ATTRIBUTE = "rigstyle_albedo"  # FLOAT_COLOR face attribute: base colour of each face's material
ALBEDO_MATERIAL = "RigStyle Albedo"  # emission material used as the albedo pass override
NORMAL_MATERIAL = "RigStyle Normal"  # emission material used as the normal pass override
DEPTH_MATERIAL = "RigStyle Depth"  # emission material used as the depth pass override
UV_MATERIAL = "RigStyle UV"  # emission material used as the uv pass override
ALPHA_MATERIAL = "RigStyle Coverage"  # emission material used as the alpha (coverage) pass override
COMPOSITOR_GROUP = "RigStyle Compositor"
REFINED_IMAGE = "RigStyle Refined"  # image (and compositor node) of the refined frame sequence
PLAIN_IMAGE = "RigStyle Plain Render"  # image (and compositor node) of the plain render (beauty) sequence
REFINED_SWITCH = "RigStyle Refined Switch"  # compositor Switch node: on shows refined, off the plain render
PREVIOUS_COMPOSITOR_PROP = "rigstyle_previous_compositor"  # scene custom property: what wiring replaced
PREVIEW_IMAGE = "RigStyle Preview"  # image the live preview writes into
CANDIDATES_IMAGE = "RigStyle A or B"  # image of the "A or B?" search: candidate A left, B right
CORRECTIVE_KEY = "pose_correctives"  # shape key (value 1) rewritten on every frame with the pose correctives
# The live-rig arrays live in a Text datablock that no object uses, so the depsgraph never copies them.
LIVE_DATA_PROP = "rigstyle_live_data"  # mesh data custom property: name of its live-data Text datablock
LIVE_TOKEN_PROP = "rigstyle_live_token"  # on the mesh data and the Text: finds the Text after renames
POSEDIRS_PROP = "rigstyle_posedirs"  # Text custom property: (P * V * 3,) float32 pose-corrective basis
JOINT_DIRS_PROP = "rigstyle_joint_dirs"  # Text custom property: (J * 3 * K,) float64 joint offsets
COEFF_KEYS_PROP = "rigstyle_coeff_keys"  # Text custom property: (K,) shape key names, joint_dirs' columns
JOINT_NAMES_PROP = "rigstyle_joint_names"  # mesh data custom property: (J,) joint (bone) names, model order
PARENTS_PROP = "rigstyle_parents"  # Text custom property: (J,) int parent joint of each joint
DEFORM_BONE_PREFIX = "DEF-"  # deforming twin of every joint bone; carries the shape-dependent joint offset
OFFSET_BONE = "rigstyle_joint_offset"  # root-level bone whose location is the root joint's shape offset
INTERNAL_BONE_COLLECTION = "RigStyle internals"  # hidden bone collection of the DEF- and offset bones
SETTINGS_PROP = "rigstyle"  # Object pointer property: RIGSTYLE_PG_rig_settings

"""Datasets: the offline defaults rendered locally and loaders for the paper's real data (Sec. 4.1).

Images: OpenMoji colour emoji (:mod:`ddmi_lite.data.emoji`) and image folders in the
CelebA-HQ / AFHQ-v2 layout (:mod:`ddmi_lite.data.folders`). NeRF: posed views of coloured
procedural objects in the SRN-cars layout (:mod:`ddmi_lite.data.views`). Shapes: procedural furniture written
in the Occupancy-Networks layout, read by the same loader as ShapeNet (:mod:`ddmi_lite.data.shapes`). Caches live under
:func:`default_data_dir` (``$DDMI_DATA_DIR`` or ``<repo>/data``).
"""

from ddmi_lite.data.emoji import (
    ALLOWED_SIZES as EMOJI_SIZES,
    default_data_dir,
    emoji_group,
    list_emoji_sequences,
    load_emoji,
    load_emoji_names,
    prepare_emoji,
    split_names,
)
from ddmi_lite.data.folders import (
    IMAGE_EXTENSIONS,
    ImageFolderDataset,
    list_image_files,
    load_image_folder,
    read_image,
)
from ddmi_lite.data.shapes import (
    CATEGORIES as SHAPE_CATEGORIES,
    Shape,
    ShapeNetOccupancy,
    generate_collection,
    generate_shape,
    load_captions,
    load_pointcloud_npz,
    load_points_npz,
    prepare_shapes,
)
from ddmi_lite.data.video import (
    FrameFolderDataset,
    MovingEmojiConfig,
    list_clips,
    load_frame_folder,
    load_moving_emoji,
    prepare_moving_emoji,
)
from ddmi_lite.data.views import (
    SRNDataset,
    ViewConfig,
    load_srn_object,
    prepare_views,
    read_intrinsics,
    read_pose,
)

__all__ = [
    "SRNDataset",
    "ViewConfig",
    "load_srn_object",
    "prepare_views",
    "read_intrinsics",
    "read_pose",
    "FrameFolderDataset",
    "MovingEmojiConfig",
    "list_clips",
    "load_frame_folder",
    "load_moving_emoji",
    "prepare_moving_emoji",
    "SHAPE_CATEGORIES",
    "Shape",
    "ShapeNetOccupancy",
    "generate_collection",
    "generate_shape",
    "load_captions",
    "load_pointcloud_npz",
    "load_points_npz",
    "prepare_shapes",
    "EMOJI_SIZES",
    "IMAGE_EXTENSIONS",
    "ImageFolderDataset",
    "default_data_dir",
    "emoji_group",
    "list_emoji_sequences",
    "list_image_files",
    "load_emoji",
    "load_emoji_names",
    "load_image_folder",
    "prepare_emoji",
    "read_image",
    "split_names",
]

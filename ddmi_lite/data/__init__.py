"""Datasets: the offline defaults rendered locally and loaders for the paper's real data (Sec. 4.1).

Images: OpenMoji colour emoji (:mod:`ddmi_lite.data.emoji`) and image folders in the
CelebA-HQ / AFHQ-v2 layout (:mod:`ddmi_lite.data.folders`). Video: moving emoji and frame
folders (:mod:`ddmi_lite.data.video`). Shapes: procedural furniture (:mod:`~ddmi_lite.data.primitives`,
:mod:`~ddmi_lite.data.furniture`, :mod:`~ddmi_lite.data.captions`) written in the
Occupancy-Networks layout (:mod:`~ddmi_lite.data.onet`), read by the same loader as ShapeNet
(:mod:`ddmi_lite.data.shapes`). NeRF: posed views of the coloured furniture
(:mod:`ddmi_lite.data.views`, ray cast by :mod:`~ddmi_lite.data.raycast`) in the SRN-cars layout
(:mod:`ddmi_lite.data.srn`), and the paper's Points2NeRF npz files
(:mod:`ddmi_lite.data.points2nerf`). Caches live under :func:`default_data_dir` (``$DDMI_DATA_DIR`` or
``<repo>/data``). The data layer imports only core modules, never :mod:`ddmi_lite.domains`.
"""

from ddmi_lite.data.captions import load_captions
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
from ddmi_lite.data.furniture import CATEGORIES as SHAPE_CATEGORIES
from ddmi_lite.data.furniture import Shape, generate_collection, generate_shape
from ddmi_lite.data.onet import load_pointcloud_npz, load_points_npz
from ddmi_lite.data.shapes import ShapeNetOccupancy, prepare_shapes
from ddmi_lite.data.points2nerf import list_view_objects, load_points2nerf_object, load_view_object
from ddmi_lite.data.srn import SRNDataset, load_srn_object, read_bounds, read_intrinsics, read_pose, view_bounds
from ddmi_lite.data.video import (
    FrameFolderDataset,
    MovingEmojiConfig,
    list_clips,
    load_frame_folder,
    load_moving_emoji,
    prepare_moving_emoji,
)
from ddmi_lite.data.views import ViewConfig, prepare_views

__all__ = [
    "SRNDataset",
    "ViewConfig",
    "list_view_objects",
    "load_points2nerf_object",
    "load_srn_object",
    "load_view_object",
    "read_bounds",
    "view_bounds",
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

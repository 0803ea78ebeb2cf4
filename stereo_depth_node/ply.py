"""Binary PLY point clouds (what MeshLab, CloudCompare and Open3D read)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def write_ply(path: str | os.PathLike, points: np.ndarray,
              colors_rgb: np.ndarray | None = None) -> int:
    """Write the finite points of an N x 3 or H x W x 3 array (+ uint8 RGB); return their count."""
    xyz = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    keep = np.isfinite(xyz).all(axis=1)
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if colors_rgb is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vertices = np.empty(int(keep.sum()), dtype=fields)
    for i, axis in enumerate("xyz"):
        vertices[axis] = xyz[keep, i]
    if colors_rgb is not None:
        rgb = np.asarray(colors_rgb).reshape(-1, 3)[keep]
        for i, channel in enumerate(("red", "green", "blue")):
            vertices[channel] = rgb[:, i]
    ply_types = {"<f4": "float", "u1": "uchar"}
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(vertices)}"]
    header += [f"property {ply_types[t]} {name}" for name, t in fields]
    header.append("end_header")
    Path(path).write_bytes(("\n".join(header) + "\n").encode("ascii") + vertices.tobytes())
    return len(vertices)

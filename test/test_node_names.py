"""The node must never reuse a name that rclpy's Node defines or uses itself.

Assigning `self._subscriptions` in the node once replaced rclpy's own list of subscriptions and the
executor died at the first spin on every ROS installation. The check reads the sources, so it
covers every assignment, including those on code paths a test machine does not take.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import textwrap

import rclpy.node
from rclpy.node import Node

import stereo_depth_node.ros


def self_attributes_assigned(cls: type) -> set[str]:
    """Names the class's own code assigns as `self.NAME` (plain, augmented, annotated, tuples),
    plus what its body defines (methods, class attributes)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    [class_def] = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    names = {item.name for item in class_def.body
             if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))}
    names |= {target.id for item in class_def.body if isinstance(item, ast.Assign)
              for target in item.targets if isinstance(target, ast.Name)}
    for node in ast.walk(class_def):
        targets = (node.targets if isinstance(node, ast.Assign) else
                   [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else [])
        for target in targets:
            for element in ast.walk(target):
                if (isinstance(element, ast.Attribute) and isinstance(element.value, ast.Name)
                        and element.value.id == "self"):
                    names.add(element.attr)
    return names - {"__init__"}


def rclpy_node_names(ros_context) -> set[str]:
    """Everything Node has, sets at construction, or touches as `self.NAME` anywhere in its module
    (some attributes are created lazily, on first use)."""
    probe = Node("name_probe")
    try:
        names = set(dir(Node)) | set(vars(probe))
    finally:
        probe.destroy_node()
    tree = ast.parse(inspect.getsource(rclpy.node))
    names |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
              and isinstance(node.value, ast.Name) and node.value.id == "self"}
    return names


def node_subclasses() -> list[type]:
    for module in pkgutil.walk_packages(stereo_depth_node.ros.__path__, "stereo_depth_node.ros."):
        importlib.import_module(module.name)
    found = []
    pending = list(Node.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.startswith("stereo_depth_node."):
            found.append(cls)
    return found


def test_the_checker_sees_a_shadowing_assignment():
    class Shadowing(Node):
        def __init__(self) -> None:
            super().__init__("shadowing")
            self._subscriptions, self.ours = [], 1
            self._clock: object = None

    assert {"_subscriptions", "ours", "_clock"} <= self_attributes_assigned(Shadowing)


def test_no_node_class_of_this_package_shadows_rclpy(ros_context):
    classes = node_subclasses()
    assert "StereoDepthNode" in {cls.__name__ for cls in classes}
    reserved = rclpy_node_names(ros_context)
    assert "_subscriptions" in reserved and "get_logger" in reserved
    for cls in classes:
        clashes = sorted(self_attributes_assigned(cls) & reserved)
        assert not clashes, f"{cls.__qualname__} reuses rclpy Node names: {clashes}"

"""keep_freed_memory in a fresh interpreter each time: mallopt changes the whole process. What it
does to a node's frames is measured over DDS in test_node_sgbm.py."""
import os
import subprocess
import sys


def _note(**env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"} | env
    return subprocess.run(
        [sys.executable, "-c", "from stereo_depth_node.allocator import keep_freed_memory; "
         "print(keep_freed_memory())"], env=environment, capture_output=True, text=True,
        check=True).stdout.strip()


def test_glibc_keeps_freed_frame_sized_blocks():
    assert _note() == "freed blocks up to 64 MiB kept for reuse (heap trimmed past 1 GiB)"


def test_the_users_malloc_tunables_win():
    assert _note(GLIBC_TUNABLES="glibc.malloc.trim_threshold=0") == "as GLIBC_TUNABLES sets it"
    # Tunables of other parts of glibc leave malloc to the node.
    assert _note(GLIBC_TUNABLES="glibc.rtld.optional_static_tls=512").startswith("freed blocks")

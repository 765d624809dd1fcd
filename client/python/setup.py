"""Build hook of moed-client: compiles proto/moed/v1/moed.proto into the wheel, never into the source tree.

Contract: a build reads client/python and the proto files and writes only to the folders the build frontend names
(the wheel or sdist's dist dir) and to a private temporary folder that is removed when the build ends.
- The proto is found in proto/ beside this file (an sdist carries it there) or else in the repository's proto/
  two levels up (a build from a clone).
- build_py runs grpc_tools.protoc (a build requirement, pyproject.toml) into its build_lib, so the wheel holds the
  generated package `moed.v1` (moed_pb2, moed_pb2_grpc) next to `moed_client`. An editable install (pip install -e)
  imports moed_client from the tree and gets the stubs as installed files (rerun it after a proto change).
- The runtime requirements follow the grpcio-tools that generated the code: its protobuf range (the generated
  modules check the runtime against their gencode version) and grpcio >= its version.
"""

import atexit
import importlib.metadata
import importlib.resources
import shutil
import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
PROTO_FILES = ("moed/v1/moed.proto",)  # relative to a proto root, as the C++ build compiles them
GENERATED_PACKAGES = ("moed", "moed/v1")  # each gets an __init__.py

# setuptools writes build/ and *.egg-info/ beside setup.py unless told otherwise; send them to a private folder.
SCRATCH = Path(tempfile.mkdtemp(prefix="moed-client-build-"))
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)


def proto_root() -> Path:
    """The folder that holds PROTO_FILES: client/python/proto (an sdist) or the repository's proto/."""
    candidates = (HERE / "proto", HERE.parent.parent / "proto")
    for root in candidates:
        if all((root / f).is_file() for f in PROTO_FILES):
            return root
    raise SystemExit(f"moed-client: {PROTO_FILES[0]} not found under {' or '.join(map(str, candidates))}; build "
                     "from a clone of the moed repository (client/python inside it) or from moed-client's sdist")


def runtime_requirements() -> list[str]:
    """grpcio at least the generator's version, protobuf in the generator's range, and the health stubs."""
    import grpc_tools.grpc_version

    protobuf = [r for r in importlib.metadata.requires("grpcio-tools") or () if r.startswith("protobuf")]
    return [f"grpcio>={grpc_tools.grpc_version.VERSION}", *protobuf, "grpcio-health-checking"]


class BuildPyWithStubs(build_py):
    """build_py, then protoc's Python and gRPC output for PROTO_FILES into build_lib."""

    def run(self) -> None:
        super().run()
        from grpc_tools import protoc

        root = proto_root()
        well_known = importlib.resources.files("grpc_tools") / "_proto"
        out = Path(self.build_lib)
        if self.editable_mode:  # pip install -e: moed_client stays in the tree; the stubs go into the editable wheel
            out = Path(self.get_finalized_command("install").install_lib)
        args = ["grpc_tools.protoc", f"-I{root}", f"-I{well_known}", f"--python_out={out}",
                f"--grpc_python_out={out}", *(str(root / f) for f in PROTO_FILES)]
        if protoc.main(args) != 0:
            raise SystemExit(f"moed-client: grpc_tools.protoc failed on {root}")
        for pkg in GENERATED_PACKAGES:
            (out / pkg / "__init__.py").touch()
        for f in out.rglob("*.py"):
            f.chmod(0o644)  # readable by all whatever the builder's umask: the wheel records these modes


class SdistWithProto(sdist):
    """sdist that carries PROTO_FILES in proto/, so that its wheel builds without the repository around it."""

    def make_release_tree(self, base_dir, files) -> None:
        super().make_release_tree(base_dir, files)
        root = proto_root()
        for f in PROTO_FILES:
            dest = Path(base_dir) / "proto" / f
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / f, dest)


setup(
    install_requires=runtime_requirements(),
    cmdclass={"build_py": BuildPyWithStubs, "sdist": SdistWithProto},
    options={"build": {"build_base": str(SCRATCH / "build")}, "egg_info": {"egg_base": str(SCRATCH)}},
)

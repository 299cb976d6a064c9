"""Puts the package's __init__.py, the generated uniffi module (as pci_vault._uniffi) and the
shared library into the wheel.

With PCI_VAULT_UNIFFI_DIR set (an absolute path), takes them from that folder (the OUT_DIR of build.sh);
otherwise runs `build.sh --release` first, which needs cargo.
"""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

HERE = Path(__file__).resolve().parent


def _library_name() -> str:
    if sys.platform == "darwin":
        return "libpci_vault_uniffi.dylib"
    return "libpci_vault_uniffi.so"


class NativeLibraryHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version, build_data):
        if self.target_name != "wheel":
            return
        prebuilt = os.environ.get("PCI_VAULT_UNIFFI_DIR")
        if prebuilt:
            out = Path(prebuilt)
            if not out.is_absolute():
                raise RuntimeError("PCI_VAULT_UNIFFI_DIR must be an absolute path")
        else:
            built = subprocess.run(
                [str(HERE / "build.sh"), "--release"],
                check=True,
                stdout=subprocess.PIPE,
                text=True,
            )
            out = Path(built.stdout.strip().splitlines()[-1])
        module = out / "python" / "pci_vault.py"
        library = out / "python" / _library_name()
        for path in (module, library):
            if not path.is_file():
                raise RuntimeError(f"{path} is missing: run bindings/uniffi/build.sh")
        init = HERE / "python" / "pci_vault" / "__init__.py"
        build_data["force_include"][str(init)] = "pci_vault/__init__.py"
        build_data["force_include"][str(module)] = "pci_vault/_uniffi.py"
        build_data["force_include"][str(library)] = f"pci_vault/{_library_name()}"
        # The wheel holds a native library loaded with ctypes: any Python 3 on this
        # platform, not py3-none-any.
        build_data["pure_python"] = False
        platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
        build_data["tag"] = f"py3-none-{platform}"

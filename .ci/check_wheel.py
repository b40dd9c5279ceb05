"""The wheel holds every file of the package that the repository holds (modules and data, tracked or new and not
ignored) and the licence: ``python .ci/check_wheel.py dist/hilbert_diffusion-*.whl``, run at the repository root."""

import subprocess
import sys
import zipfile

wheel = zipfile.ZipFile(sys.argv[1])
listed = subprocess.run(
    ["git", "ls-files", "--cached", "--others", "--exclude-standard", "hilbert_diffusion"],
    capture_output=True, text=True, check=True,
).stdout.split()
present = set(wheel.namelist())
missing = [path for path in listed if path not in present]
if not any(name.endswith(".dist-info/licenses/LICENSE") for name in present):
    missing.append("LICENSE (in .dist-info/licenses/)")
if missing:
    sys.exit(f"{sys.argv[1]} lacks {len(missing)} file(s): {', '.join(missing)}; declare them in pyproject.toml.")
print(f"{sys.argv[1]}: all {len(listed)} package files and the licence are in the wheel.")

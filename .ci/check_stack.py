"""Exit non-zero unless the installed versions are those pinned in a stack file (``name==version`` per line):
the package's own install command must keep the stack a researcher already has."""

import importlib.metadata
import sys
from pathlib import Path

pins = dict(line.split("==") for line in Path(sys.argv[1]).read_text().split() if "==" in line)
wrong = {name: (version, importlib.metadata.version(name)) for name, version in pins.items()
         if importlib.metadata.version(name).split("+")[0] != version}  # 2.13.0+cpu is 2.13.0
for name, (wanted, found) in wrong.items():
    print(f"{name}: {found} installed, the stack has {wanted}: the install command changed it", file=sys.stderr)
sys.exit(1 if wrong else 0)

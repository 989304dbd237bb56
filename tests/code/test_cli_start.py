"""The command line starts quickly: ``mkrich --help`` and the one-line errors do not import the
heavy libraries (scikit-learn/SciPy, TensorFlow, Kubeflow, KServe, the web stack), which took
3-4 s before anything was printed. Checked by what is imported, not by a clock."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("sklearn", "scipy", "tensorflow", "keras", "kfp", "kserve", "onnxruntime", "binance",
         "boto3", "fastapi", "sqlalchemy", "matplotlib", "arch")


def _imported(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY + ('pandas',)!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_importing_the_cli_loads_no_data_library():
    assert _imported("import make_us_rich.cli") == []


def test_help_and_argument_parsing_load_nothing_heavy():
    loaded = _imported(
        "from make_us_rich.cli import build_parser\n"
        "build_parser().parse_args(['run', '--symbols', 'DOGEEUR'])"
    )
    assert [m for m in loaded if m != "pandas"] == []


def test_help_prints_without_heavy_imports():
    probe = (
        "import sys\nfrom make_us_rich.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print('LOADED', [m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "usage: mkrich" in out.stdout and "LOADED []" in out.stdout

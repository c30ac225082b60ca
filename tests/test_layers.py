"""The layering in ../shared/STYLE.md: imports point downward only (enforced with import-linter)."""
import shutil
import subprocess
import sys
from pathlib import Path


def test_import_layers_contract():
    root = Path(__file__).resolve().parents[1]
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    result = subprocess.run([exe], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" in result.stdout.lower() or "kept" in result.stdout.lower()

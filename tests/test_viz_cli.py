"""`stylegan serve`: its checks before binding, the warning off loopback, and the package without FastAPI."""
from __future__ import annotations

import subprocess
import sys

import pytest

from test_viz_support import make_tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_tree(tmp_path_factory.mktemp("viz"))


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    from stylegan.cli import main
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", *args])
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


@pytest.mark.parametrize("args, words", [
    (["--network", "/no/such/file.pkl"], "--network /no/such/file.pkl: no such file"),
    (["--models-dir", "/no/such/dir"], "--models-dir /no/such/dir: no such folder"),
    ([], "give at least one --network"),
    (["--network", "x.pkl", "--port", "70000"], "70000 is not in the range"),
])
def test_serve_refuses_bad_input_with_one_line(capsys, args, words):
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and words in err and "Traceback" not in err


def test_serve_warns_when_binding_beyond_loopback(tree, monkeypatch, capsys):
    import stylegan.viz.server as server
    from stylegan.cli import main
    served = []
    monkeypatch.setattr(server, "serve", lambda config, app=None, sock=None: served.append((config, sock)))
    main(["serve", "--network", str(tree["cli_sg2"]), "--host", "127.0.0.1", "--port", "0", "--device", "cpu"])
    out = capsys.readouterr()
    assert "warning" not in out.err and "ssh -N -L" in out.out
    main(["serve", "--network", str(tree["cli_sg2"]), "--host", "0.0.0.0", "--port", "0", "--device", "cpu"])
    out = capsys.readouterr()
    assert "warning: --host 0.0.0.0" in out.err and "SSH tunnel" in out.err
    assert [c.host for c, _ in served] == ["127.0.0.1", "0.0.0.0"]
    for _, sock in served:
        sock.close()


def test_serve_without_the_extra_says_what_to_install(tree, monkeypatch, capsys):
    import stylegan.viz
    monkeypatch.setitem(sys.modules, "fastapi", None)
    monkeypatch.delitem(sys.modules, "stylegan.viz.server")
    monkeypatch.delattr(stylegan.viz, "server")
    code, _, err = run_cli(capsys, "--network", str(tree["cli_sg2"]))
    assert code == 2 and "pip install 'stylegan[viz]'" in err and "Traceback" not in err


def test_package_imports_without_fastapi():
    code = ("import sys\n"
            "sys.modules['fastapi'] = None\n"
            "sys.modules['uvicorn'] = None\n"
            "import stylegan.viz as viz\n"
            "assert viz.RenderParams.from_json({'network': 'a.pkl'}).seed == 0\n"
            "assert 'fastapi' not in [m.split('.')[0] for m in sys.modules if sys.modules[m] is not None]\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr

"""The layers hold: import-linter's contracts pass and fail when broken, the arrows
drawn in docs/architecture.md are the imports in the code, and the docs that name
files name files that exist."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "fleetstat"
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")
# Under everything: any part may import them, and the arrows into them are not drawn.
SHARED = {"errors", "model", "units", "config"}


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root / "src"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_contracts_hold() -> None:
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("store/core.py", "import fleetstat.mail", "The store imports neither"),
        ("store/reports.py", "from fleetstat import transport", "The store imports neither"),
        ("probe/linux.py", "import fleetstat.units", "The probe runs on the host alone"),
        ("alerts/machine.py", "from fleetstat.mail.render import Message", "alerts uses mail's"),
        ("mail/render.py", "import fleetstat.alerts", "mail imports nothing of alerts"),
        ("app.py", "from fleetstat import cli", "Nothing imports the command line"),
        ("web/views.py", "import sqlalchemy", "The pages read through store's queries"),
        ("api/app.py", "from fleetstat import web", "The API does not import the pages"),
    ],
)
def test_an_import_across_a_layer_breaks_a_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    shutil.copytree(SRC, tmp_path / "src" / "fleetstat", ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with (tmp_path / "src" / "fleetstat" / module).open("a", encoding="utf-8") as source:
        source.write(f"\n{line}  # added by test_layers\n")
    done = lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(rf"^{re.escape(contract)}.* BROKEN$", done.stdout, re.M), done.stdout
    assert "1 broken" in done.stdout


def _drawn_arrows() -> dict[str, set[str]]:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = text.split("\n## Arrows\n", 1)[1].split("```\n", 2)[1]
    arrows: dict[str, set[str]] = {}
    for entry in block.splitlines():
        part, _, targets = entry.partition(" -> ")
        arrows[part.strip()] = set(targets.split())
    return arrows


def _code_arrows() -> dict[str, set[str]]:
    graph = grimp.build_graph("fleetstat", exclude_type_checking_imports=True)
    arrows: dict[str, set[str]] = {}
    for module in graph.modules:
        if module == "fleetstat":
            continue
        part = module.split(".")[1]
        for imported in graph.find_modules_directly_imported_by(module):
            target = imported.split(".")[1] if "." in imported else ""
            if target and target != part and target not in SHARED:
                arrows.setdefault(part, set()).add(target)
    return arrows


def test_the_arrows_drawn_are_the_imports_in_the_code() -> None:
    drawn, code = _drawn_arrows(), _code_arrows()
    expected = "\n".join(f"{part} -> {' '.join(sorted(code[part]))}" for part in sorted(code))
    assert drawn == code, (
        "docs/architecture.md's arrows differ from the imports in src/fleetstat; if the new "
        f"dependency is right, draw it and write the list as:\n{expected}"
    )


def test_the_shared_parts_import_only_each_other() -> None:
    code = _code_arrows()
    assert not any(code.get(part) for part in SHARED), {p: code.get(p) for p in SHARED}


# A path as the docs write one: folders and files of the repository or of src/fleetstat.
_PATH = re.compile(r"`((?:\.\./)?[\w.-]+(?:/[\w.*-]+)*(?:\.(?:py|md|toml|xml|service)|/))`")


@pytest.mark.parametrize("doc", ["docs/contracts.md", "docs/architecture.md"])
def test_the_docs_name_only_files_that_exist(doc: str) -> None:
    text = (ROOT / doc).read_text(encoding="utf-8")
    named = sorted(set(_PATH.findall(text)))
    assert named, f"{doc} names no file at all: the pattern is wrong"
    missing = [path for path in named if not _exists(path, (ROOT / doc).parent)]
    assert missing == [], f"{doc} names what does not exist in the repository: {missing}"


def _exists(path: str, beside: Path) -> bool:
    """Inside the repository, from its root, from src/fleetstat/ or from the doc's folder."""
    for base in (ROOT, SRC, beside):
        place = (base / path).resolve()
        if not place.is_relative_to(ROOT):
            continue  # the repository stands alone: nothing outside it counts
        if list(place.parent.glob(place.name)) if "*" in place.name else place.exists():
            return True
    return False

"""The exact versions a test run used, and CONTRIBUTING.md's table of them.

    python .ci/tested_versions.py record > .venv/tested-versions.txt      (`make test` does this)
    python .ci/tested_versions.py table OLDEST.txt HOSTED.txt NEWEST.txt   (`make versions`)

`record` prints the Python version and the installed version of every package of requirements.txt and
requirements-dev.txt; `table` puts such records side by side between the tested-versions markers of
CONTRIBUTING.md, one column each: oldest end, Colab's set, newest end.
"""

import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from dlwpt.doctor import read_requirements

ROOT = Path(__file__).resolve().parents[1]
TABLE_FILE = ROOT / "CONTRIBUTING.md"
BEGIN, END = "<!-- tested-versions:begin -->", "<!-- tested-versions:end -->"
COLUMNS = ["oldest end", "Colab's set", "newest end"]


def package_names():
    return [name for file in ("requirements.txt", "requirements-dev.txt") for name, _ in read_requirements(ROOT / file)]


def record():
    lines = [f"python {platform.python_version()}"]
    for name in package_names():
        try:
            lines.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            lines.append(f"{name} (not installed)")
    return "\n".join(lines) + "\n"


def table(*paths):
    records = [dict(line.split(" ", 1) for line in Path(p).read_text(encoding="utf-8").splitlines()) for p in paths]
    rows = ["| package | " + " | ".join(COLUMNS) + " |", "|" + " --- |" * (len(COLUMNS) + 1)]
    for name in ["python", *package_names()]:
        cells = [r.get(name, "-").replace("(not installed)", "-") for r in records]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def write_table(*record_paths, path=TABLE_FILE):
    text = path.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        sys.exit(f"{path} has no {BEGIN} ... {END} markers")
    head, rest = text.split(BEGIN, 1)
    path.write_text(f"{head}{BEGIN}\n{table(*record_paths)}\n{END}{rest.split(END, 1)[1]}", encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:2] == ["record"]:
        sys.stdout.write(record())
    elif sys.argv[1:2] == ["table"] and len(sys.argv) == 2 + len(COLUMNS):
        write_table(*sys.argv[2:])
    else:
        sys.exit(__doc__)

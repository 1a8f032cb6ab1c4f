"""The versions a test run used, and CONTRIBUTING.md's table of them.

    python .ci/tested_versions.py record > .venv/tested-versions.txt      (`make test` does this)
    python .ci/tested_versions.py table OLDEST.txt HOSTED.txt NEWEST.txt   (`make versions`)

`record` prints the Python version and the installed version of every package of requirements.txt and
requirements-dev.txt; `table` writes such records side by side between CONTRIBUTING.md's tested-versions markers.
"""

import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from dlwpt.doctor import read_requirements

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- tested-versions:begin -->", "<!-- tested-versions:end -->"
NAMES = [name for file in ("requirements.txt", "requirements-dev.txt") for name, _ in read_requirements(ROOT / file)]


def installed(name):
    try:
        return version(name)
    except PackageNotFoundError:
        return "-"


def table(*paths):
    records = [dict(line.split(" ", 1) for line in Path(p).read_text(encoding="utf-8").splitlines()) for p in paths]
    rows = ["| package | oldest end | Colab's set | newest end |", "| --- | --- | --- | --- |"]
    rows += [f"| {name} | " + " | ".join(r.get(name, "-") for r in records) + " |" for name in ["python", *NAMES]]
    return "\n".join(rows)


if __name__ == "__main__":
    if sys.argv[1:] == ["record"]:
        print(f"python {platform.python_version()}", *(f"{name} {installed(name)}" for name in NAMES), sep="\n")
    elif sys.argv[1:2] == ["table"] and len(sys.argv) == 5:
        path = ROOT / "CONTRIBUTING.md"
        text = path.read_text(encoding="utf-8")
        if BEGIN not in text or END not in text:
            sys.exit(f"{path} has no {BEGIN} ... {END} markers")
        head, rest = text.split(BEGIN, 1)
        path.write_text(f"{head}{BEGIN}\n{table(*sys.argv[2:])}\n{END}{rest.split(END, 1)[1]}", encoding="utf-8")
    else:
        sys.exit(__doc__)

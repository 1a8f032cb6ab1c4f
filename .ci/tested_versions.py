"""The exact versions a test run used, and the README's table of them.

    python .ci/tested_versions.py record > .venv/tested-versions.txt      (`make test` does this)
    python .ci/tested_versions.py readme OLDEST.txt HOSTED.txt NEWEST.txt  (`make versions`)

`record` prints the Python version and the installed version of every package of
requirements.txt; `readme` puts such records side by side between the README's
tested-versions markers, one column each: oldest end, Colab's set, newest end.
"""

import platform
import re
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- tested-versions:begin -->", "<!-- tested-versions:end -->"


def requirement_names(path=ROOT / "requirements.txt"):
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.append(re.match(r"[A-Za-z0-9_.\-]+", line).group(0))
    return names


def record():
    lines = [f"python {platform.python_version()}"]
    for name in requirement_names():
        try:
            lines.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            lines.append(f"{name} (not installed)")
    return "\n".join(lines) + "\n"


def read_record(path):
    return dict(line.split(" ", 1) for line in Path(path).read_text(encoding="utf-8").splitlines() if line)


COLUMNS = ["oldest end", "Colab's set", "newest end"]


def readme_table(*records):
    rows = ["| package | " + " | ".join(COLUMNS) + " |", "|" + " --- |" * (len(COLUMNS) + 1)]
    for name in ["python", *requirement_names()]:
        cells = [r.get(name, "-").replace("(not installed)", "-") for r in records]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def write_readme(*record_paths, readme=ROOT / "README.md"):
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        sys.exit(f"{readme} has no {BEGIN} ... {END} markers")
    table = readme_table(*map(read_record, record_paths))
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    readme.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:2] == ["record"]:
        sys.stdout.write(record())
    elif sys.argv[1:2] == ["readme"] and len(sys.argv) == 2 + len(COLUMNS):
        write_readme(*sys.argv[2:])
    else:
        sys.exit(__doc__)

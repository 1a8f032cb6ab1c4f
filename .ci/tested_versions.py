"""The exact versions a test run used, and the README's table of them.

    python .ci/tested_versions.py record > .venv/tested-versions.txt      (`make test` does this)
    python .ci/tested_versions.py readme NEWEST.txt OLDEST.txt            (`make versions`)

`record` prints the Python version and the installed version of every package of
requirements.txt; `readme` puts two such records side by side between the README's
tested-versions markers.
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


def readme_table(newest, oldest):
    rows = ["| package | oldest tested | newest tested |", "| --- | --- | --- |"]
    for name in ["python", *requirement_names()]:
        rows.append(f"| {name} | {oldest.get(name, '-')} | {newest.get(name, '-')} |")
    return "\n".join(rows)


def write_readme(newest_path, oldest_path, readme=ROOT / "README.md"):
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        sys.exit(f"{readme} has no {BEGIN} ... {END} markers")
    table = readme_table(read_record(newest_path), read_record(oldest_path))
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    readme.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:2] == ["record"]:
        sys.stdout.write(record())
    elif sys.argv[1:2] == ["readme"] and len(sys.argv) == 4:
        write_readme(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)

"""Derive the book's ``hour-fixed.csv`` from the UCI bike-sharing ``hour.csv``.

``hour.csv`` skips hours with no rentals; ``hour-fixed.csv`` inserts them so that
every day has 24 rows (17,520 rows = 730 days). The rule, read off the published
file:

- Gaps are found from the ``hr`` column alone (the date is not looked at), walking
  the rows in order.
- A gap inside a day (hour 4, then hour 6) is filled with copies of the row before it.
- A gap across midnight (hour 21, then hour 3) fills the hours to 23 with copies of
  the row before and the hours from 0 with copies of the row after.
- Each copy keeps every column of the row it copies (``instant`` and ``dteday``
  included), with ``hr`` set to the missing hour and ``cnt`` set to 0 (the
  published file leaves ``casual`` and ``registered`` as copied).

Because only hours are looked at, the long outage of 2012-10-29/30 (hour 0, then
hour 13 of the next day) comes out as one day: 13 rows dated 2012-10-29 and 11 dated
2012-10-30, which is why the file has 730 days, not 731.

Usage: ``python data/make_hour_fixed.py [OUT] [--src hour.csv]``
(OUT defaults to ``data-unversioned/p1ch4/hour-fixed.csv``, never the published file).
"""

import argparse
import csv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SRC = ROOT / "data/p1ch4/bike-sharing-dataset/hour.csv"
DEFAULT_OUT = ROOT / "data-unversioned/p1ch4/hour-fixed.csv"

HR, CNT = 5, 16  # column indexes of hr and cnt


def filled(row, hour):
    """A copy of ``row`` standing for ``hour`` with no rentals counted."""
    new = list(row)
    new[HR] = str(hour)
    new[CNT] = "0"
    return new


def fix_rows(rows):
    """Insert the missing hours into the data rows (header excluded)."""
    out = []
    prev = None
    for row in rows:
        hour = int(row[HR])
        if prev is None:
            out.extend(filled(row, h) for h in range(hour))  # file starting after hour 0
        else:
            prev_hour = int(prev[HR])
            if hour > prev_hour:  # same day
                out.extend(filled(prev, h) for h in range(prev_hour + 1, hour))
            else:  # the day changed
                out.extend(filled(prev, h) for h in range(prev_hour + 1, 24))
                out.extend(filled(row, h) for h in range(hour))
        out.append(row)
        prev = row
    if prev is not None:
        out.extend(filled(prev, h) for h in range(int(prev[HR]) + 1, 24))  # file ending before hour 23
    return out


def make_hour_fixed(src, out):
    """Read ``src`` (hour.csv), write the fixed table to ``out``; return the row count."""
    with open(src, newline="", encoding="ascii") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = fix_rows(list(reader))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="ascii") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return len(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=DEFAULT_OUT, help=f"output CSV (default: {DEFAULT_OUT})")
    parser.add_argument("--src", default=DEFAULT_SRC, help=f"UCI hour.csv (default: {DEFAULT_SRC})")
    args = parser.parse_args(argv)
    n = make_hour_fixed(args.src, args.out)
    print(f"wrote {n} rows to {args.out}")


if __name__ == "__main__":
    main()

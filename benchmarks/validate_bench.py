"""How fast playbooks validate, and how fast the CLI starts.

    python benchmarks/validate_bench.py [--count 1000]

Reports, in one run on this machine: in-process validation of COUNT playbooks
(copies of the built-in ones), `remediate validate` over a folder of them as a
subprocess, and CLI start-up (`remediate --help`, `--version`) against a bare
`python -c pass` and against `python -c "import boto3"` (what start-up would
cost if the CLI imported boto3). Figures are medians of repeated runs and are
printed with ratios, since the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def median_seconds(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(cmd, check=False, capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    from remediate.language.loader import load_file

    sources = sorted((ROOT / "playbooks").glob("*.yaml"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shutil.copytree(ROOT / "playbooks" / "scripts", folder / "scripts")
        files = []
        for i in range(args.count):
            source = sources[i % len(sources)]
            path = folder / f"{i:05d}-{source.name}"
            path.write_text(source.read_text())
            files.append(path)
        load_file(files[0])  # load the registry once, as a long-lived process would
        started = time.perf_counter()
        for path in files:
            assert load_file(path).ok
        in_process = time.perf_counter() - started
        python = sys.executable
        cli = [python, "-m", "remediate"]
        folder_run = median_seconds([*cli, "validate", str(folder)], max(3, args.repeat // 2))

    bare = median_seconds([python, "-c", "pass"], args.repeat)
    boto = median_seconds([python, "-c", "import boto3"], args.repeat)
    help_ = median_seconds([*cli, "--help"], args.repeat)
    version = median_seconds([*cli, "--version"], args.repeat)
    one = median_seconds([*cli, "validate", str(sources[0])], args.repeat)

    print(f"validate {args.count} playbooks in-process: {in_process:.3f} s "
          f"({in_process / args.count * 1000:.2f} ms each)")
    print(f"remediate validate <folder of {args.count}>:  {folder_run:.3f} s")
    print(f"python -c pass:                {bare * 1000:7.1f} ms   (1.00x)")
    print(f"remediate --version:           {version * 1000:7.1f} ms   ({version / bare:.2f}x)")
    print(f"remediate --help:              {help_ * 1000:7.1f} ms   ({help_ / bare:.2f}x)")
    print(f"remediate validate (1 file):   {one * 1000:7.1f} ms   ({one / bare:.2f}x)")
    print(f"python -c 'import boto3':      {boto * 1000:7.1f} ms   ({boto / bare:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

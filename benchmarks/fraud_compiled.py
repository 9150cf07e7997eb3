"""The fraud replay interpreted and compiled (mypyc), in the same run: the same decisions, and
the compiled one's speed as a ratio to the interpreted one's.

```sh
.venv/bin/python benchmarks/fraud_compiled.py                  # 50,000 transactions, 3 rounds
.venv/bin/python benchmarks/fraud_compiled.py --n 117000 --rounds 3 --json compiled.json
.venv/bin/python benchmarks/fraud_compiled.py --build-only DIR   # just the compiled tree
```

It copies `src/paymesh` into a temporary tree and compiles there, with mypyc, the modules that
pyproject.toml lists under `[tool.paymesh] compiled` (what `PAYMESH_COMPILE=1 pip install`
compiles), so the working tree never holds an extension module that would shadow its source.
Each round then runs `fraud_replay.py` twice, alternating, in child processes: once on this
tree's source and once on the compiled tree (`PYTHONPATH`). Every run must score every
transaction the same (score, decision and factors, line for line), or it exits non-zero; each
child reports which of paymesh's modules it imported compiled, and a compiled run that
imported none fails too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def compiled_sources() -> list[str]:
    """The modules to compile, relative to the `src` folder (as mypyc is run there)."""
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["paymesh"]["compiled"]
    return [str(Path(path).relative_to("src")) for path in listed]


def build(tree: Path) -> float:
    """A copy of the package in `tree` with the listed modules compiled; returns the seconds."""
    started = time.monotonic()
    shutil.copytree(
        ROOT / "src" / "paymesh",
        tree / "paymesh",
        ignore=shutil.ignore_patterns("__pycache__", "*.so"),
    )
    done = subprocess.run(
        [sys.executable, "-m", "mypyc", f"--config-file={ROOT / 'mypyc.ini'}", *compiled_sources()],
        cwd=tree,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        errors = [line for line in done.stdout.splitlines() if ": error:" in line]
        raise SystemExit(
            "mypyc failed:\n" + "\n".join(errors or done.stdout.splitlines()[-20:]) + done.stderr
        )
    # What a child with the tree first on PYTHONPATH imports, as every user of the tree runs.
    modules = [path.removesuffix(".py").replace("/", ".") for path in compiled_sources()]
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importlib, sys\n"
            "for name in sys.argv[1:]:\n"
            "    if not importlib.import_module(name).__file__.endswith('.so'): print(name)",
            *modules,
        ],
        env={**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{ROOT}"},
        capture_output=True,
        text=True,
        check=True,
    )
    if probe.stdout.strip():
        raise SystemExit(f"imported from source, not compiled: {probe.stdout.split()}")
    return time.monotonic() - started


def replay(
    source: Path,
    n: int,
    seed: int,
    repeat: int,
    model: str,
    workdir: Path,
    name: str,
    model_process: bool = False,
) -> dict[str, Any]:
    figures, scores = workdir / f"{name}.json", workdir / f"{name}.scores"
    env = {**os.environ, "PYTHONPATH": f"{source}{os.pathsep}{ROOT}"}
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "fraud_replay.py"),
            *("--n", str(n), "--seed", str(seed), "--repeat", str(repeat), "--model", model),
            *("--json", str(figures), "--scores", str(scores)),
            *(["--model-process"] if model_process else []),
        ],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    result: dict[str, Any] = json.loads(figures.read_text())
    result["scores_file"] = scores
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50_000, help="transactions (default 50,000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="alternating pairs (default 3)")
    parser.add_argument("--repeat", type=int, default=3, help="passes in each run (best kept)")
    parser.add_argument(
        "--model", choices=["packaged", "none"], default="packaged", help="as fraud_replay.py's"
    )
    parser.add_argument(
        "--model-process",
        action="store_true",
        help="every run scores the model in a second process (fraud_replay.py's flag)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the figures as JSON")
    parser.add_argument(
        "--build-only", type=Path, metavar="DIR", help="only build the compiled tree in DIR"
    )
    args = parser.parse_args()

    if args.build_only:
        seconds = build(args.build_only)
        print(
            f"compiled {len(compiled_sources())} modules into {args.build_only} in {seconds:.0f} s"
        )
        return

    with tempfile.TemporaryDirectory(prefix="paymesh-compiled-") as temp:
        work = Path(temp)
        seconds = build(work / "tree")
        print(f"compiled {', '.join(compiled_sources())} in {seconds:.0f} s\n")
        rows = []
        reference: bytes | None = None
        for round_ in range(1, args.rounds + 1):
            runs = {}
            for name, source in (("interpreted", ROOT / "src"), ("compiled", work / "tree")):
                run = replay(
                    source,
                    *(args.n, args.seed, args.repeat, args.model, work, f"{name}-{round_}"),
                    model_process=args.model_process,
                )
                scored = run["scores_file"].read_bytes()
                if reference is None:
                    reference = scored
                elif scored != reference:
                    raise SystemExit(f"round {round_}: the {name} run scored differently")
                if (name == "compiled") != bool(run["compiled_modules"]):
                    raise SystemExit(
                        f"round {round_}: the {name} run imported compiled modules:"
                        f" {run['compiled_modules'] or 'none'}"
                    )
                runs[name] = run
            rows.append(
                {
                    "round": round_,
                    "interpreted": runs["interpreted"]["transactions_per_second"],
                    "compiled": runs["compiled"]["transactions_per_second"],
                    "compiled_modules": runs["compiled"]["compiled_modules"],
                }
            )
    print(
        f"seed {args.seed}, {args.n:,} transactions, model {args.model}"
        + (" in its own process" if args.model_process else "")
        + f", best of {args.repeat} passes a run"
    )
    print(f"{'round':>5} {'interpreted txn/s':>18} {'compiled txn/s':>15} {'ratio':>6}")
    for row in rows:
        row["ratio"] = row["compiled"] / row["interpreted"]
        print(
            f"{row['round']:>5} {row['interpreted']:>18,.0f} {row['compiled']:>15,.0f}"
            f" {row['ratio']:>6.2f}"
        )
    median = statistics.median(row["ratio"] for row in rows)
    assert reference is not None
    transactions = reference.count(b"\n")
    print(
        f"\nmedian ratio {median:.2f}; every run scored all {transactions:,}"
        " transactions the same (score, decision, factors)"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"n": args.n, "seed": args.seed, "rounds": rows, "median_ratio": median})
            + "\n"
        )


if __name__ == "__main__":
    main()

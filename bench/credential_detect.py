"""Credential detection: corpus figures and scan cost per body (issue 31).

    .venv/bin/python bench/credential_detect.py [--repeat 200]

Prints the detection rate on self-identifying secrets alone and in context, the
look-alike refusal rate (tests/credentials/data/secret_corpus.json, each sample as
`{"note": <text>}`), then microseconds per JSON body as the guard judges it (the raw-
text prefilter, then the document walk when it may hold something): a 1 KiB tools/call,
1 MiB of ordinary documents, and 1 MiB built from every detector's needle (the worst
case for the engine: every pattern runs over the whole text). Median of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.credentials import formats
from proxy.credentials.detect import Detector

DATA = Path(__file__).resolve().parent.parent / "tests" / "credentials" / "data"
D = Detector()


def judge(body: bytes) -> bool:
    """What CredentialsGuard does with a JSON body: prefilter, then walk."""
    if Detector.json_clean(body):
        return False
    return bool(D.scan_json(json.loads(body)))


def rates() -> list[tuple[str, int, int]]:
    corpus = json.loads((DATA / "secret_corpus.json").read_text())
    out = []
    for cls in ("alone", "context", "lookalike"):
        hits = sum(bool(D.scan_json({"note": s["text"]})) for s in corpus[cls])
        out.append((cls, hits, len(corpus[cls])))
    return out


def tool_call_1k() -> bytes:
    args = {"query": "SELECT id, email, created_at FROM users WHERE tenant_id = $1 "
                     "AND created_at > now() - interval '7 days' ORDER BY id LIMIT 50",
            "params": ["acme"], "explain": False, "timeout_ms": 5000,
            "labels": {"team": "growth", "dashboard": "weekly-signups", "owner": "ops"},
            "notes": "Weekly signup report for the growth dashboard; see the runbook at "
                     "https://wiki.example.org/runbooks/growth/weekly-signups for context."}
    doc = {"jsonrpc": "2.0", "id": 42, "method": "tools/call",
           "params": {"name": "run_sql", "arguments": args, "_meta": {"progressToken": "p-42"}}}
    body = json.dumps(doc)
    pad = 1024 - len(body) - len(', "pad": ""')
    doc["params"]["arguments"]["pad"] = "lorem ipsum dolor sit amet " * (pad // 27)
    return json.dumps(doc).encode()


def documents_1m() -> bytes:
    items = []
    size = 0
    i = 0
    while size < 1_048_576 - 400:
        item = {"id": i, "title": f"Quarterly report {i}",
                "url": f"https://docs.example.org/r/{i}",
                "body": "Revenue grew in every region; churn fell. " * 4, "tags": ["finance"],
                "author": {"name": "Ops Team", "email": "ops@example.org"}}
        items.append(item)
        size += len(json.dumps(item)) + 2
        i += 1
    return json.dumps({"documents": items}).encode()


def needles_1m() -> bytes:
    unit = " ".join(n + "A1b2C3d4e5" for n, _ in formats._NEEDLES) + " password=x "
    text = (unit * (1_048_576 // len(unit) + 1))[:1_048_500]
    return json.dumps({"note": text}).encode()


def per_call_us(body: bytes, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        judge(body)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=200)
    args = ap.parse_args()
    print(f"detectors: {len(formats.FORMATS)} formats ({len({f.kind for f in formats.FORMATS})}"
          f" kinds), {len(formats.CONTEXT)} context rules, {len(formats._NEEDLES)} needles")
    print(f"{'corpus':<34}{'refused':>10}{'of':>8}{'rate':>9}")
    for cls, hits, total in rates():
        label = {"alone": "self-identifying, alone", "context": "secrets in context",
                 "lookalike": "look-alikes (lower is better)"}[cls]
        print(f"{label:<34}{hits:>10}{total:>8}{hits / total:>9.1%}")
    print()
    print(f"{'body (JSON, as the guard judges it)':<44}{'bytes':>10}{'us/call':>12}")
    for name, body, reps in (
        ("tools/call arguments, 1 KiB", tool_call_1k(), args.repeat * 10),
        ("ordinary documents, 1 MiB", documents_1m(), max(5, args.repeat // 10)),
        ("every detector's needle, 1 MiB (worst)", needles_1m(), max(3, args.repeat // 40)),
    ):
        print(f"{name:<44}{len(body):>10}{per_call_us(body, reps):>12.1f}")


if __name__ == "__main__":
    main()

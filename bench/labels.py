"""Label benchmark: signing and printing the whole exam's labels.

    .venv/bin/python bench/labels.py                 # the city: 23,228 labels
    .venv/bin/python bench/labels.py --scale tiny    # a few rooms, seconds

Prints (a) labels signed per second (``issue_label`` with a real Ed25519 key
over every item of ``sample_plan(scale)``), target >= 2,000/s, and (b) labels
drawn into one PDF per second and the total seconds for all of them, target
<= 120 s for the city, each with PASS or FAIL. The PDF goes to a temporary
folder (kept with ``--keep``); its size and page count are printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from custody.keyring import key_id  # noqa: E402
from custody.labels import LabelPayload, Signer, issue_label  # noqa: E402
from custody.plan import plan_items  # noqa: E402
from custody.sample import sample_plan  # noqa: E402
from printing.layout import LAYOUTS  # noqa: E402
from printing.printable import printable_label  # noqa: E402
from printing.sheet import write_label_pdf  # noqa: E402

SIGN_TARGET = 2000.0  # labels per second
PDF_TARGET = 120.0  # seconds for the whole city
ISSUED_AT = datetime(2017, 6, 1, 8, 0, tzinfo=UTC)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=["tiny", "city"], default="city")
    parser.add_argument("--lang", choices=["zh", "en"], default="zh")
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="2x6")
    parser.add_argument("--workers", type=int, default=None, help="QR worker processes (default: every CPU)")
    parser.add_argument("--keep", action="store_true", help="keep the PDF and print its path")
    args = parser.parse_args(argv)

    plan = sample_plan(args.scale)
    items = plan_items(plan)
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    signer = Signer(key_id(public), private.sign)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"scale {args.scale}: {len(items):,} items, {cpus} CPU(s), layout {args.layout}, lang {args.lang}")

    started = time.perf_counter()
    texts = [
        issue_label(LabelPayload(i.item_id, i.kind, plan.exam, i.subject, i.destination, i.count, ISSUED_AT,
                                 i.seal, i.parent_box), signer)
        for i in items
    ]
    signing = time.perf_counter() - started
    rate = len(texts) / signing
    print(f"(a) signed {len(texts):,} labels in {signing:.2f} s: {rate:,.0f} labels/s "
          f"(target >= {SIGN_TARGET:,.0f}/s)  {verdict(rate >= SIGN_TARGET)}")

    labels = [printable_label(plan, item, text, lang=args.lang) for item, text in zip(items, texts, strict=True)]
    folder = Path(tempfile.mkdtemp(prefix="custody-labels-"))
    pdf = folder / f"labels-{args.scale}.pdf"
    last_report = [0.0]

    def progress(done: int) -> None:
        now = time.perf_counter()
        if now - last_report[0] >= 10:
            last_report[0] = now
            print(f"    ... {done:,} labels drawn, {now - started:.0f} s", flush=True)

    started = time.perf_counter()
    count = write_label_pdf(labels, pdf, lang=args.lang, progress=progress, layout=LAYOUTS[args.layout],
                            workers=args.workers)
    total = time.perf_counter() - started
    pages = -(-count // LAYOUTS[args.layout].per_page)
    print(f"(b) drew {count:,} labels on {pages:,} pages in {total:.1f} s: {count / total:,.0f} labels/s; "
          f"whole {args.scale} in one PDF: {total:.1f} s (target <= {PDF_TARGET:.0f} s)  "
          f"{verdict(total <= PDF_TARGET)}")
    print(f"    PDF size {pdf.stat().st_size / 1e6:.1f} MB ({pdf.stat().st_size / count:,.0f} bytes a label)")
    if args.keep:
        print(f"    kept at {pdf}")
    else:
        pdf.unlink()
        folder.rmdir()
    return 0 if rate >= SIGN_TARGET and total <= PDF_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())

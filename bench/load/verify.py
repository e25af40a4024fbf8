"""After the load: is every save the server acknowledged stored, once, with the content the client sent?

Run by run_load.py in the load environment (`python bench/load/verify.py --results R.json --out V.json`). For
each acknowledged save (2xx) it finds the version by its X-Save-Id and compares the version number answered,
the stored sha256 with that of the labelmap the client sent (decoded here from the body it recorded), and the
stored bytes with the body. It also checks that no save id made two versions, that every stream's version numbers
run 1, 2, 3 … without a gap, and counts the interaction events stored against those acknowledged.
"""

import argparse
import base64
import hashlib
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db.models import Count, Max  # noqa: E402

from delineation import labelmap_codec  # noqa: E402
from delineation.models import ContourVersion, SessionEvent  # noqa: E402


def verify(results: dict) -> dict:
    acks = results["acks"]
    stored = {str(v.save_id): v for v in ContourVersion.objects.filter(save_id__in=[a["save_id"] for a in acks])}
    missing, mismatched = [], []
    for ack in acks:
        version = stored.get(ack["save_id"])
        if version is None:
            missing.append(ack["save_id"])
            continue
        problems = []
        if version.number != ack["number"]:
            problems.append(f"number {version.number} stored, {ack['number']} answered")
        sent = labelmap_codec.decode(base64.b64decode(ack["body"]), tuple(ack["shape"]), ack["segments"])
        if version.sha256 != labelmap_codec.labelmap_sha256(sent, ack["segments"]):
            problems.append("labelmap sha256 differs from that of the labelmap sent")
        if hashlib.sha256(bytes(version.labelmap)).hexdigest() != ack["body_sha256"]:
            problems.append("stored bytes differ from the body sent")
        if problems:
            mismatched.append({"save_id": ack["save_id"], "problems": problems})
    answered_twice = len(acks) - len({a["save_id"] for a in acks})
    duplicate_save_ids = ContourVersion.objects.values("save_id").annotate(n=Count("pk")).filter(n__gt=1).count()
    streams = ContourVersion.objects.values("patient_id", "stream").annotate(n=Count("pk"), top=Max("number"))
    gaps = [f"{s['patient_id']}/{s['stream']}" for s in streams if s["n"] != s["top"]]
    load_versions = ContourVersion.objects.filter(author__username__regex=r"^load_(phys|panel)_\d+$").count()
    return {
        "acknowledged": len(acks),
        "found": len(acks) - len(missing),
        "missing": missing[:20],
        "mismatched": mismatched[:20],
        "mismatched_count": len(mismatched),
        "acknowledged_twice": answered_twice,
        "save_ids_with_two_versions": duplicate_save_ids,
        "streams_with_gaps": gaps,
        "versions_by_load_users": load_versions,
        "versions_not_acknowledged": load_versions - len(stored),
        "events_acknowledged": results["counts"].get("events acknowledged", 0),
        "events_stored": SessionEvent.objects.count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    report = verify(json.loads(args.results.read_text()))
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if not isinstance(v, list)}))


if __name__ == "__main__":
    main()

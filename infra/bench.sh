#!/usr/bin/env bash
# Runs the criterion benchmarks (release build, real redis-server started by the bench) and
# prints each measurement's median with its ratio to the baseline measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p livecache-cache --bench cache -- "$@" 2>&1 | grep -E "^(hit_1KiB|hit_6KiB_page|codec_10KiB): " || true
python3 - <<'PY'
import json, pathlib
root = pathlib.Path("target/criterion")
def median(group, name):
    p = root / group / name / "new" / "estimates.json"
    if not p.exists():
        p = root / name / "new" / "estimates.json"
    return json.loads(p.read_text())["median"]["point_estimate"] / 1000.0 if p.exists() else None
rows = [
    ("hit_1KiB", "raw_redis_get", None),
    ("hit_1KiB", "cache_get_or_load", ("hit_1KiB", "raw_redis_get")),
    ("hit_6KiB_page", "without_l1", None),
    ("hit_6KiB_page", "with_l1", ("hit_6KiB_page", "without_l1")),
    ("batch_100", "raw_redis_mget", None),
    ("batch_100", "cache_get_many_or_load_raw_json", ("batch_100", "raw_redis_mget")),
    ("batch_100", "cache_get_many_or_load_typed", ("batch_100", "raw_redis_mget")),
    ("batch_100", "raw_redis_100_sequential_gets", ("batch_100", "cache_get_many_or_load_raw_json")),
    ("", "memory_hit_1KiB", ("hit_1KiB", "raw_redis_get")),
    ("codec_10KiB", "json_only_encode", None),
    ("codec_10KiB", "encode_compress", ("codec_10KiB", "json_only_encode")),
    ("codec_10KiB", "decode", ("codec_10KiB", "json_only_encode")),
    ("codec_10KiB", "unpack_zlib", None),
    ("codec_10KiB", "unpack_lz4", ("codec_10KiB", "unpack_zlib")),
]
print(f"| benchmark | median (µs) | ratio | vs |")
print(f"|---|---:|---:|---|")
for group, name, base in rows:
    m = median(group, name)
    if m is None:
        continue
    ratio, vs = "", "baseline"
    if base:
        b = median(*base)
        if b:
            ratio, vs = f"{m / b:.2f}×", "/".join(x for x in base if x)
    print(f"| {'/'.join(x for x in (group, name) if x)} | {m:.1f} | {ratio} | {vs} |")
PY

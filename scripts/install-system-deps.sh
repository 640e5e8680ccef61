#!/usr/bin/env bash
# Installs what the tests need beyond Python packages, idempotently:
#  - Debian's chromium (headless preview screenshots);
#  - Debian's fonts-wqy-microhei (1.6 MB; CJK, Cyrillic and Latin glyphs for review captions,
#    chosen over fonts-noto-cjk's 57 MB download; the review finds either);
#  - the AWS Lambda Runtime Interface Emulator, taken from the aws-sam-cli wheel
#    (no Docker needed), into .cache/rie/.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing+=(fonts-wqy-microhei)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "${missing[*]} missing and we are not root: install Debian's packages" >&2
    exit 1
  fi
fi

arch=$(uname -m)
case "$arch" in
  x86_64) rie_name=aws-lambda-rie-x86_64 ;;
  aarch64|arm64) rie_name=aws-lambda-rie-arm64 ;;
  *) echo "no Lambda runtime emulator for $arch" >&2; exit 1 ;;
esac
rie=.cache/rie/aws-lambda-rie
if [ ! -x "$rie" ]; then
  tmp=$(mktemp -d)
  .venv/bin/python -m pip download -q --no-deps -d "$tmp" aws-sam-cli
  .venv/bin/python - "$tmp" "$rie_name" <<'PY'
import pathlib, sys, zipfile
tmp, name = pathlib.Path(sys.argv[1]), sys.argv[2]
wheel = next(tmp.glob("aws_sam_cli-*.whl"))
out = pathlib.Path(".cache/rie"); out.mkdir(parents=True, exist_ok=True)
with zipfile.ZipFile(wheel) as zf:
    (out / "aws-lambda-rie").write_bytes(zf.read(f"samcli/local/rapid/{name}"))
PY
  chmod +x "$rie"
  rm -rf "$tmp"
fi

#!/usr/bin/env bash
# Regenerates the Python code of servicedesk/v1/ from ../../proto/servicedesk/v1/*.proto with
# the protoc bundled in grpcio-tools (pinned in requirements-dev.txt). Idempotent and
# deterministic: run it twice and `git diff --exit-code` shows nothing.
#
#   pip install -r requirements-dev.txt
#   ./generate.sh            # or: PYTHON=/path/to/python ./generate.sh
#
# proto/google/rpc/error_details.proto is deliberately NOT generated: google.rpc.BadRequest and
# ErrorInfo come from googleapis-common-protos, and a second copy would clash with it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
proto_root="$(cd "$here/../../proto" && pwd)"
python="${PYTHON:-python3}"
out="$here/servicedesk/v1"

want="$(sed -n 's/^grpcio-tools==\([^ ;#]*\).*/\1/p' "$here/requirements-dev.txt")"
have="$("$python" -c 'from importlib.metadata import version; print(version("grpcio-tools"))' 2>/dev/null || true)"
if [[ -z "$have" ]]; then
  echo "generate.sh: grpcio-tools is not installed for $python; run: pip install -r $here/requirements-dev.txt" >&2
  exit 1
fi
if [[ "$have" != "$want" ]]; then
  echo "generate.sh: grpcio-tools $have is installed but requirements-dev.txt pins $want; the output would differ" >&2
  exit 1
fi

# Start from a clean slate so a proto file that was removed leaves no stale module behind.
rm -f "$out"/*_pb2.py "$out"/*_pb2.pyi "$out"/*_pb2_grpc.py

# Relative paths under the proto root: the descriptors embed `servicedesk/v1/NAME.proto` and the
# modules import each other as `from servicedesk.v1 import types_pb2`, which resolves inside
# this package.
cd "$proto_root"
protos=()
while IFS= read -r file; do protos+=("$file"); done < <(LC_ALL=C ls servicedesk/v1/*.proto)
"$python" -m grpc_tools.protoc \
  --proto_path=. \
  --python_out="$here" \
  --pyi_out="$here" \
  --grpc_python_out="$here" \
  "${protos[@]}"

cat > "$out/__init__.py" <<'PY'
"""Generated gRPC and protobuf modules of the servicedesk.v1 API (see generate.sh).

Import the modules you need, e.g. ``from servicedesk.v1 import desk_pb2, desk_pb2_grpc``.
"""
PY

echo "generated $(cd "$out" && LC_ALL=C ls *_pb2*.py *_pb2.pyi | wc -l | tr -d ' ') files in ${out#"$here"/}"

#!/usr/bin/env bash
# Generates the Python gRPC stubs of moed.v1 into client/python/_gen (gitignored) with grpc_tools.protoc.
#   client/python/gen_stubs.sh [PYTHON]   (default: the repo's .venv/bin/python, else python3)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
py="${1:-}"
if [ -z "$py" ]; then
  if [ -x "$root/.venv/bin/python" ]; then py="$root/.venv/bin/python"; else py=python3; fi
fi
exec "$py" -c "import sys; sys.path.insert(0, '$here'); import moed_client; print(moed_client.generate_stubs(force=True))"

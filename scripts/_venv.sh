# Sourced by scripts/run and scripts/test: bring ./.venv in line with a lock file.
#
# ensure_venv LOCK
#   - creates .venv with $PYTHON (default python3.11) if it has no interpreter yet;
#   - installs LOCK with `pip install --require-hashes`, then the project itself editable
#     (--no-deps --no-build-isolation: setuptools comes from the lock);
#   - skips both when LOCK and pyproject.toml are unchanged since the last install
#     (stamp: .venv/.installed-LOCK.sha256). Delete the stamp, or .venv, to force a reinstall.

LTS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LTS_VENV="$LTS_ROOT/.venv"

_venv_die() { echo "scripts: $*" >&2; exit 1; }

_is_py311() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; }

# pip, quiet, minus one harmless warning this machine's pip config prints for every package
# ("Location 'file:///...' is ignored: it is neither a file nor a directory"); errors still show.
_pip() {
  "$LTS_VENV/bin/python" -m pip --disable-pip-version-check -q "$@" 2>&1 \
    | { grep -v "^WARNING: Location 'file://.*' is ignored: it is neither a file nor a directory" || true; } >&2
  return "${PIPESTATUS[0]}"
}

ensure_venv() {
  local lock="$LTS_ROOT/$1" py="${PYTHON:-python3.11}"
  [[ -f $lock ]] || _venv_die "$1 is missing; run scripts/lock"

  if [[ ! -x $LTS_VENV/bin/python ]]; then
    command -v "$py" >/dev/null || _venv_die "$py not found; set PYTHON=/path/to/python3.11"
    _is_py311 "$py" || _venv_die "$py is not Python 3.11; set PYTHON=/path/to/python3.11"
    echo "scripts: creating .venv with $py" >&2
    "$py" -m venv "$LTS_VENV" || _venv_die "could not create .venv"
  fi
  _is_py311 "$LTS_VENV/bin/python" \
    || _venv_die ".venv is not Python 3.11 (the locks are for 3.11); remove it: rm -rf .venv"

  local stamp="$LTS_VENV/.installed-$1.sha256" want
  want="$(cd "$LTS_ROOT" && sha256sum "$1" pyproject.toml)"
  if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi

  echo "scripts: installing $1 into .venv" >&2
  rm -f "$stamp"
  _pip install --require-hashes -r "$lock" || _venv_die "pip install -r $1 failed"
  _pip install --no-deps --no-build-isolation -e "$LTS_ROOT" \
    || _venv_die "editable install of the project failed"
  _pip check >/dev/null 2>&1 \
    || echo "scripts: warning: 'pip check' reports conflicts in .venv (see .venv/bin/pip check)" >&2
  printf '%s\n' "$want" >"$stamp"
}

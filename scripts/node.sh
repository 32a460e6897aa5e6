# Node.js 22 for this shell. Source it (bash): `source scripts/node.sh`.
#
# If `node` on PATH is older than 22, installs the Node binary from the npm package
# node-linux-<arch>@$GLIMPSE_NODE_VERSION into the git-ignored .tools/node/ (once; reused while
# its version matches) and prepends .tools/node/bin to PATH, so `node`, and the machine's
# `npm`/`npx` (whose shebang is `#!/usr/bin/env node`), run on Node 22. A node that is already
# 22+ is left alone. Returns non-zero, with a message, when no Node 22 can be had.
#
# .ci/run and scripts/test.sh (`npm test`) source it; source it yourself before `npm start`
# on a machine whose node is older.

GLIMPSE_NODE_VERSION=22.23.5

_glimpse_node_major() { # major version of the `node` on PATH, or 0
  local v
  v="$(node --version 2>/dev/null)" || { echo 0; return; }
  v="${v#v}"
  echo "${v%%.*}"
}

_glimpse_node_install() { # $1 = .tools dir; installs $1/node with bin/node = v$GLIMPSE_NODE_VERSION
  local tools="$1" dest="$1/node" arch pkg tmp
  case "$(uname -s)/$(uname -m)" in
    Linux/x86_64) arch=x64 ;;
    Linux/aarch64 | Linux/arm64) arch=arm64 ;;
    *) echo "node.sh: no prebuilt Node for $(uname -s)/$(uname -m): install Node.js 22+ yourself" >&2
       return 1 ;;
  esac
  command -v npm >/dev/null || {
    echo "node.sh: 'npm' not found: install Node.js 22+ (https://nodejs.org)" >&2; return 1; }
  pkg="node-linux-$arch@$GLIMPSE_NODE_VERSION"
  echo "node.sh: installing Node $GLIMPSE_NODE_VERSION ($pkg) into $dest" >&2
  mkdir -p "$tools" || return 1
  # Unpack into a temp dir next to the target and rename it into place, so an interrupted
  # install never leaves a half-written .tools/node.
  tmp="$(mktemp -d "$tools/.node-install.XXXXXX")" || return 1
  if ! (cd "$tmp" && npm pack --loglevel=error "$pkg" >/dev/null && tar xzf ./*.tgz && rm -f ./*.tgz) ||
     [[ "$("$tmp/package/bin/node" --version 2>/dev/null)" != "v$GLIMPSE_NODE_VERSION" ]]; then
    echo "node.sh: could not install $pkg (npm pack failed or its node does not run)" >&2
    rm -rf "$tmp"; return 1
  fi
  # An older pinned version is replaced; the same version installed meanwhile by a concurrent run is kept.
  if [[ -e "$dest" && "$("$dest/bin/node" --version 2>/dev/null)" != "v$GLIMPSE_NODE_VERSION" ]]; then
    mv -T "$dest" "$tmp/old" || { rm -rf "$tmp"; return 1; }
  fi
  mv -T "$tmp/package" "$dest" 2>/dev/null ||
    [[ "$("$dest/bin/node" --version 2>/dev/null)" == "v$GLIMPSE_NODE_VERSION" ]] ||
    { echo "node.sh: could not move Node into $dest" >&2; rm -rf "$tmp"; return 1; }
  rm -rf "$tmp"
}

_glimpse_node_setup() {
  local root tools bin path
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)" || return 1
  tools="$root/.tools"
  bin="$tools/node/bin"
  (( $(_glimpse_node_major) >= 22 )) && return 0
  if [[ "$("$bin/node" --version 2>/dev/null)" != "v$GLIMPSE_NODE_VERSION" ]]; then
    _glimpse_node_install "$tools" || return 1
  fi
  path=":$PATH:"; path="${path//":$bin:"/:}"; path="${path#:}"; path="${path%:}"
  export PATH="$bin${path:+:$path}"   # first on PATH (moved there if it was already on it)
  hash -r
  if (( $(_glimpse_node_major) < 22 )); then
    echo "node.sh: node is still $(node --version 2>/dev/null) after putting $bin on PATH" >&2
    return 1
  fi
}

_glimpse_node_setup
_glimpse_node_rc=$?
unset -f _glimpse_node_major _glimpse_node_install _glimpse_node_setup
# `return` when sourced; `exit` when run as `bash scripts/node.sh` (installs only).
return $_glimpse_node_rc 2>/dev/null || exit $_glimpse_node_rc

# Shared helpers for the harness build scripts. Source it; it defines
# functions and variables and has no side effects beyond that.
#
# Layout of the cache (outside the checkout, shared by every clone):
#   $HARNESS_CACHE/<component>-<version>/bin/...   built binaries
#   $HARNESS_CACHE/<component>-<version>/.built    written last, holds the recipe
#   $HARNESS_CACHE/gomod, $HARNESS_CACHE/gobuild   GOMODCACHE and GOCACHE
#   $HARNESS_CACHE/logs/<component>-<version>.log  output of the last build

HARNESS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
. "$HARNESS_DIR/versions.env"

HARNESS_CACHE=${PODNET_HARNESS_CACHE:-${XDG_CACHE_HOME:-/var/cache}/podnet/harness}

# The Go toolchain: /usr/local/go first (Debian's /usr/bin/go is too old),
# never a downloaded toolchain, module and build caches inside the cache.
export PATH=/usr/local/go/bin:$PATH
export GOTOOLCHAIN=local
export GOMODCACHE=$HARNESS_CACHE/gomod
export GOCACHE=$HARNESS_CACHE/gobuild
export GOFLAGS="-trimpath -buildvcs=false -mod=mod"
export GOWORK=off
unset GOPATH GOBIN GOOS GOARCH GOAMD64 CGO_CFLAGS CGO_LDFLAGS

# Builds only use idle CPU: the machine is shared.
harness_nice() {
  if command -v ionice >/dev/null; then
    nice -n 19 ionice -c3 "$@"
  else
    nice -n 19 "$@"
  fi
}

harness_die() {
  echo "harness: $*" >&2
  exit 1
}

# harness_go_check: the go command exists and is new enough for Go modules
# that declare go 1.24 and godebug lines.
harness_go_check() {
  command -v go >/dev/null || harness_die "find go: not in /usr/local/go/bin or PATH"
  local v
  v=$(go env GOVERSION) || harness_die "run go env: failed"
  case $v in
    go1.2[4-9]* | go1.[3-9][0-9]* | go[2-9]*) ;;
    *) harness_die "check go version: $v is older than go1.24 (install Go to /usr/local/go)" ;;
  esac
}

# harness_component_dir NAME VERSION: the cache entry of one component.
harness_component_dir() {
  echo "$HARNESS_CACHE/$1-$2"
}

# harness_is_built DIR RECIPE: the entry exists and was built by this recipe.
harness_is_built() {
  [[ -f $1/.built ]] && [[ $(cat "$1/.built") == "$2" ]]
}

# harness_mark_built DIR RECIPE: record a finished build (the last step).
harness_mark_built() {
  printf '%s\n' "$2" >"$1/.built"
}

# harness_log NAME VERSION: the build log file of one component.
harness_log() {
  mkdir -p "$HARNESS_CACHE/logs"
  echo "$HARNESS_CACHE/logs/$1-$2.log"
}

# harness_run LOG CMD...: run a nice'd command with its output in LOG; on
# failure show the log's tail and fail.
harness_run() {
  local log=$1
  shift
  echo "+ $*" >>"$log"
  if ! harness_nice "$@" >>"$log" 2>&1; then
    tail -n 30 "$log" >&2
    harness_die "run $1: failed, full log in $log"
  fi
}

# harness_timed NAME VERSION SECONDS: note how long a cold build took.
harness_timed() {
  mkdir -p "$HARNESS_CACHE/logs"
  printf '%s %s %ss %s\n' "$1" "$2" "$3" "$(date -u +%FT%TZ)" >>"$HARNESS_CACHE/logs/build-times.txt"
}

# Fixed linker flags: no build id, no symbol tables, so a rebuild of the
# same sources with the same toolchain gives the same bytes.
HARNESS_LDFLAGS="-s -w -buildid="

# harness_write_if_changed FILE: copy stdin to FILE unless FILE already has
# those bytes (keeps mtimes, and so go's caches, stable across runs).
harness_write_if_changed() {
  local tmp
  tmp=$(mktemp "$1.XXXXXX")
  cat >"$tmp"
  if cmp -s "$tmp" "$1"; then
    rm -f "$tmp"
  else
    mv -f "$tmp" "$1"
  fi
}

# harness_print_bins DIR: one line per built binary.
harness_print_bins() {
  local f
  for f in "$1"/bin/*; do
    [[ -x $f ]] && echo "$f"
  done
}

# harness_begin NAME VERSION: announce a build on stderr, start its log
# (sets $log) and its clock (sets $start).
harness_begin() {
  log=$(harness_log "$1" "$2")
  : >"$log"
  start=$SECONDS
  echo "harness: building $1 $2 (log: $log)" >&2
}

# harness_lock DIR: hold an exclusive lock on DIR's build until this shell
# exits, so two builds of one component (two clones, two test runs) never
# write the same cache entry at once; the second waits, then finds it built.
# harness_start DIR RECIPE NAME VERSION: the prologue of every Go component
# build. Exits the calling script (0) when DIR already holds a build of
# RECIPE, checked again under the component's lock so two builds never race;
# otherwise checks the Go toolchain and starts the log.
harness_start() {
  local dir=$1 recipe=$2 name=$3 version=$4
  harness_is_built "$dir" "$recipe" && exit 0
  harness_lock "$dir"
  harness_is_built "$dir" "$recipe" && exit 0
  harness_go_check
  harness_begin "$name" "$version"
}

harness_lock() {
  mkdir -p "$(dirname "$1")"
  exec {HARNESS_LOCK_FD}>"$1.lock"
  flock "$HARNESS_LOCK_FD"
}

# harness_module_info MODULE VERSION: downloads the module and sets gomod
# (the path of its go.mod in the module cache) and build_date (the tag's
# commit time, the build date stamped into binaries, so two builds of one
# tag are identical).
harness_module_info() {
  local mod=$1 version=$2 info infofile
  info=$(harness_nice go mod download -json "$mod@$version") ||
    harness_die "download $mod@$version: $info"
  gomod=$(sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p' <<<"$info")
  infofile=$(sed -n 's/^\t"Info": "\(.*\)",$/\1/p' <<<"$info")
  [[ -f $gomod && -f $infofile ]] || harness_die "download $mod@$version: no go.mod in $info"
  build_date=$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$infofile")
  [[ -n $build_date ]] || harness_die "read $infofile: no Time"
}

# harness_kubernetes_module DIR VERSION SCRIPT: writes DIR/go.mod, a wrapper
# module that requires k8s.io/kubernetes@VERSION with each staging module of
# that tag's go.mod replaced by its v0.x.y release (the tag's own go.mod
# points them at ./staging, which a module download does not have), and the
# tag's go and godebug lines. go.sum is dropped only when go.mod changed.
# Sets stamp to the -ldflags -X values that stamp the binaries with the
# tag's version and commit time (so two builds of one tag are identical).
harness_kubernetes_module() {
  local dir=$1 version=$2 script=$3 goline godebug m
  local minor_patch=${version#v1.}
  local -a staging
  harness_module_info k8s.io/kubernetes "$version"
  stamp=""
  for m in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    stamp+=" -X $m.gitVersion=$version -X $m.gitMajor=1 -X $m.gitMinor=${minor_patch%%.*}"
    stamp+=" -X $m.gitTreeState=archive -X $m.buildDate=$build_date"
  done

  goline=$(grep -m1 '^go ' "$gomod")
  godebug=$(grep '^godebug ' "$gomod" || true)
  mapfile -t staging < <(sed -n 's#^\t\(k8s\.io/[^ ]*\) => \./staging/src/.*#\1#p' "$gomod")
  ((${#staging[@]} > 0)) || harness_die "read $gomod: no staging replace lines"
  mkdir -p "$dir"
  {
    echo "// Generated by scripts/harness/$script.sh; do not edit."
    echo "module podnet.invalid/harness/$script"
    echo
    echo "$goline"
    [[ -n $godebug ]] && echo "$godebug"
    echo
    echo "require k8s.io/kubernetes $version"
    echo
    echo "replace ("
    for m in "${staging[@]}"; do
      echo "	$m => $m v0.$minor_patch"
    done
    echo ")"
  } >"$dir/go.mod.new"
  if ! cmp -s "$dir/go.mod.new" "$dir/go.mod.in" 2>/dev/null; then
    cp "$dir/go.mod.new" "$dir/go.mod"
    cp "$dir/go.mod.new" "$dir/go.mod.in"
    rm -f "$dir/go.sum"
  fi
  rm -f "$dir/go.mod.new"
}

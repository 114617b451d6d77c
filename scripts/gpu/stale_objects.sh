# Sourced by scripts/gpu/pack.sh and pack_branches.sh. An object whose depfile ninja lost (two
# builds in one directory at once) is recorded with no dependencies, so editing a header no
# longer rebuilds it: from 2026-12-05 05:32 every carry packed, main's and the branches', held
# one and the same megakernel (docs/performance.md). remove_stale_objects BUILD_DIR deletes
# such objects, so that the next build compiles them again; check_no_stale_objects BUILD_DIR
# fails if any remain.
stale_objects() {
  [[ -f $1/.ninja_deps ]] || return 0
  ninja -C "$1" -t deps | awk '/#deps 0,/ {sub(/:$/, "", $1); print $1}'
}
remove_stale_objects() {
  local object
  for object in $(stale_objects "$1"); do rm -f "$1/$object"; done
}
check_no_stale_objects() {
  local stale
  stale=$(stale_objects "$1")
  [[ -z $stale ]] || { echo "ninja recorded no dependencies for: $stale" >&2; return 1; }
}

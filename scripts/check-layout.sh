#!/bin/sh
# The layout check (src/README.md): every #include of a project header must
# point down the pipeline (cli -> service | eval -> spaces -> engine -> core,
# or within the same folder), and the module graph (x.c + x.h = module x)
# must have no cycle; a module's private header eps_x_internal.h, next to
# its sources, is part of module x (the parts of a split module, eps_x_*.c,
# include it). Files over 800 lines and functions over 150 are listed as
# warnings (the budgets of src/README.md).
# Exit 1 on a back-edge or a cycle, naming the file and the include.
set -u
cd "$(dirname "$0")/.."
rank() {
  case $1 in
    core) echo 0 ;; engine) echo 1 ;; spaces) echo 2 ;; service | eval) echo 3 ;; cli) echo 4 ;; *) echo x ;;
  esac
}
fail=0
edges=$(mktemp)
trap 'rm -f "$edges"' EXIT
for f in $(find src include/epsinas -name '*.[ch]' | sort); do
  case $f in
    include/epsinas/*) dir=$(echo "$f" | cut -d/ -f3) ;;
    src/*) dir=$(echo "$f" | cut -d/ -f2) ;;
  esac
  r=$(rank "$dir")
  if [ "$r" = x ]; then echo "check-layout: $f is outside the pipeline folders"; fail=1; continue; fi
  mod=$(basename "$f" | sed 's/\.[ch]$//; s/^eps_//; s/_internal$//')
  grep -n '^#include "' "$f" | while IFS= read -r line; do
    inc=$(echo "$line" | sed 's/.*#include "\([^"]*\)".*/\1/')
    case $inc in
      epsinas/*/*) to=$(echo "$inc" | cut -d/ -f2) ;;
      */*) to=$(echo "$inc" | cut -d/ -f1) ;;
      *) to=$dir ;;   # a private header next to the file
    esac
    tr=$(rank "$to")
    tmod=$(basename "$inc" .h | sed 's/^eps_//; s/_internal$//')
    if [ "$tr" = x ]; then echo "check-layout: $f:${line%%:*}: $inc is in no pipeline folder"; echo FAIL >>"$edges"; continue; fi
    if [ "$to" != "$dir" ] && [ "$tr" -ge "$r" ]; then
      echo "check-layout: $f:${line%%:*}: $dir may not include $inc ($to is not below $dir)"
      echo FAIL >>"$edges"
    fi
    [ "$tmod" != "$mod" ] && echo "$dir/$mod $to/$tmod" >>"$edges"
  done
done
grep -q '^FAIL$' "$edges" && fail=1
if ! grep -v '^FAIL$' "$edges" | sort -u | tsort >/dev/null 2>"$edges.err"; then
  echo "check-layout: the module graph has a cycle:"; sed 's/^/  /' "$edges.err"; fail=1
fi
rm -f "$edges.err"
find src -name '*.c' | sort | while read -r f; do
  n=$(wc -l <"$f")
  [ "$n" -gt 800 ] && echo "check-layout: warning: $f has $n lines (budget about 800)"
  # functions: a definition's head starts in column 0, its body is { ... } in column 0
  awk -v f="$f" '
    /^[A-Za-z_].*\(/ && !/;[ \t]*$/ { head = $0; sub(/\(.*/, "", head); k = split(head, w, /[ \t*]+/); name = w[k]; start = FNR; pend = 1 }
    /^\{/ && pend { body = 1; pend = 0; next }
    /^\}/ && body { body = 0; if (FNR - start + 1 > 150) printf "check-layout: warning: %s:%d: %s has %d lines (budget about 150)\n", f, start, name, FNR - start + 1 }
  ' "$f"
done
[ "$fail" -eq 0 ] && echo "check-layout: ok (dependencies point down the pipeline, no cycle)"
exit "$fail"

#!/bin/sh
# Rewrite each FILE with one read and one write(2) (same bytes, mode 755),
# as a package manager writes a binary and as nstest.Rewrite does for the
# Go benchmarks:
#
#   bench/rewrite.sh FILE...
#
# The benchmarks run it on every binary they compare. How the linker
# wrote a file changes how fast it starts while the file is in the page
# cache, by up to 12 % and differently for each file (a binary that
# stops earlier in its work measured slower than the whole stage);
# rewritten, the binaries compare by what they do (docs/BENCHMARKS.md).
set -eu
for f in "$@"; do
	# dd, not cat: cat copies with copy_file_range(2), which a
	# file system may do by sharing blocks instead of writing them.
	dd if="$f" of="$f.rewrite" bs=256M status=none
	chmod 755 "$f.rewrite"
	mv -f "$f.rewrite" "$f"
done

#!/usr/bin/env bash
# The default model's training text: the King James Version of the Bible (public domain; the
# Debian package bible-kjv-text, read with its `bible` program), verse numbers and chapter
# headings removed, one paragraph per chapter, books separated by blank lines.
#   scripts/default_model/prepare_corpus.sh OUT.txt
set -euo pipefail
out=${1:?usage: prepare_corpus.sh OUT.txt}
if ! command -v bible >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq bible-kjv bible-kjv-text >/dev/null
fi
bible -l1000000 "Gen1:1-Rev22:21" | python3 -c '
import re, sys
chapters, book, verses = [], None, []
for line in sys.stdin:
    line = line.strip()
    heading = re.fullmatch(r"((?:[1-3] )?[A-Z][A-Za-z ]+) (\d+)", line)
    if heading:
        if verses:
            chapters.append((book, " ".join(verses)))
        book, verses = heading.group(1), []
        continue
    verse = re.match(r"\d+ (.*)", line)
    if verse:
        verses.append(verse.group(1))
chapters.append((book, " ".join(verses)))
out, last = [], None
for book, text in chapters:
    if last is not None and book != last:
        out.append("")
    out.append(text)
    last = book
sys.stdout.write("\n".join(out) + "\n")
' >"$out"
wc -c -w "$out"

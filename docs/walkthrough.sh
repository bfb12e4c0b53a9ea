#!/bin/sh
# walkthrough.sh -- collect the walkthrough marks into docs/walkthrough.md.
#
# A walkthrough mark is a comment in the monitor's sources that opens with
# a chapter letter and a number and closes with a colon:
#
#     /*D:010 The execution decision.
#      * ...
#      :*/
#
# The letters are the docs chapters, in reading order: D decision,
# E direct execution, S segment tracking, H shadow tables, T tracing and
# memory, B translation, C chaining, V devices.  This script reads every
# *.c, *.S and *.h file at the top of the project, sorts the marks by
# chapter and number, and writes them, each with the file and function
# it sits in, to docs/walkthrough.md.
#
# A malformed mark is an error: a mark that never closes with ":*/", a
# letter that is not a chapter, or the same letter and number twice.  The
# script prints FILE:LINE and the problem for each one on standard error
# and exits with status 1.  It still writes docs/walkthrough.md with
# every mark it could read, so that the tour stays readable while the
# sources are being fixed.
#
# Usage: sh docs/walkthrough.sh   (from anywhere)
cd "$(dirname "$0")/.." || exit 2

out=docs/walkthrough.md
tmp=docs/.walkthrough.$$
trap 'rm -f "$tmp.rec" "$tmp.sorted" "$tmp.md"' EXIT
trap 'exit 2' INT TERM

set -- *.c *.S *.h
for f do
    [ -f "$f" ] || { echo "walkthrough.sh: no sources matching $f" >&2; exit 2; }
done

# Pass 1: one record per mark, fields separated by tabs, the text's line
# breaks encoded as \036:  ORDER NUMBER LETTER FILE FUNCTION TEXT
awk '
BEGIN {
    chapters = "DESHTBCV"
    bad = 0
}

function fail(where, msg) {
    print where ": " msg > "/dev/stderr"
    bad = 1
}

# The name a line defines, if it starts a function (C: "name(" at the
# start of the line, the return type being on the line before or in front
# of the name; assembler: a label), a struct, union or enum; else "".
function defines(line,    s) {
    if (line ~ /^[ \t#{}\/*]/ || line ~ /^$/)
        return ""
    if (FILENAME ~ /\.S$/) {
        if (match(line, /^[A-Za-z_][A-Za-z0-9_]*:/))
            return substr(line, 1, RLENGTH - 1)
        return ""
    }
    if (line ~ /^(typedef )?(static )?(struct|union|enum) [A-Za-z_][A-Za-z0-9_]* *\{/) {
        s = line
        sub(/ *\{.*/, "", s)
        sub(/^typedef /, "", s)
        sub(/^static /, "", s)
        return s
    }
    if (line ~ /;[ \t]*$/ || line ~ /=/)
        return ""
    if (match(line, /[A-Za-z_][A-Za-z0-9_]*\(/))
        return substr(line, RSTART, RLENGTH - 1) "()"
    return ""
}

# Remove the comment decoration from one line of a comment body.
function clean(s) {
    sub(/^[ \t]+/, "", s)
    sub(/^\*( |$)/, "", s)
    sub(/[ \t]+$/, "", s)
    if (s ~ /^#/)                   # would be a Markdown heading
        s = "\\" s
    return s
}

function addline(s) {
    s = clean(s)
    if (s == "" && ntext == 0)
        return
    text[ntext++] = s
}

function open_mark(line, pos,    rest, hdr) {
    inmark = 1
    mfile = FILENAME
    mline = FNR
    mletter = substr(line, pos + 2, 1)
    rest = substr(line, pos + 4)
    match(rest, /^[0-9]+/)
    mnum = substr(rest, 1, RLENGTH)
    rest = substr(rest, RLENGTH + 1)
    # Inside a function when the comment is indented or follows code.
    minside = pos > 1
    mfunc = minside ? curdef : ""
    ntext = 0
    if (index(chapters, mletter) == 0)
        fail(mfile ":" mline, "mark " mletter ":" mnum " has no chapter (letters: " chapters ")")
    return rest
}

# The mark is complete: check it, then keep it until its function is known.
function close_mark(    key, i, t) {
    inmark = 0
    key = mletter ":" (mnum + 0)
    if (key in seen)
        fail(mfile ":" mline, "duplicate mark " mletter ":" mnum " (also at " seen[key] ")")
    else
        seen[key] = mfile ":" mline
    while (ntext > 0 && text[ntext - 1] == "")
        ntext--
    t = ""
    for (i = 0; i < ntext; i++)
        t = t (i ? "\036" : "") text[i]
    npend++
    pletter[npend] = mletter
    pnum[npend] = mnum
    pfile[npend] = mfile
    ptext[npend] = t
    pfunc[npend] = mfunc
    plook[npend] = minside ? 0 : 2      # top-level: look at the next two code lines
}

function emit(i) {
    printf "%d\t%d\t%s\t%s\t%s\t%s\n", index(chapters, pletter[i]), pnum[i] + 0,
        pletter[i], pfile[i], pfunc[i], ptext[i]
}

function flush_pending(    i) {
    for (i = 1; i <= npend; i++)
        emit(i)
    npend = 0
}

# A mark that opens on this line (or -1): "/*", a capital letter, ":", digits.
function markpos(line) {
    if (match(line, /\/\*[A-Z]:[0-9]+/))
        return RSTART
    return 0
}

FNR == 1 {
    if (inmark)
        fail(mfile ":" mline, "mark " mletter ":" mnum " never closes with :*/")
    inmark = 0
    flush_pending()
    curdef = ""
}

{
    line = $0
    if (!inmark) {
        # Resolve the function of top-level marks waiting for code.
        if (npend > 0 && line !~ /^[ \t]*$/) {
            d = defines(line)
            for (i = 1; i <= npend; i++)
                if (plook[i] > 0) {
                    if (d != "") {
                        pfunc[i] = d
                        plook[i] = 0
                    } else if (--plook[i] == 0 || line ~ /^[ \t]*\/\*/ || line ~ /;[ \t]*$/)
                        plook[i] = 0
                }
            done = 1
            for (i = 1; i <= npend; i++)
                if (plook[i] > 0)
                    done = 0
            if (done)
                flush_pending()
        }
        d = defines(line)
        if (d != "")
            curdef = d
        else if (line ~ /^\}/)
            curdef = ""
        p = markpos(line)
        if (!p)
            next
        line = open_mark(line, p)
    }
    # Inside a mark: another opening means this one was never closed.
    p = markpos(line)
    if (p && FNR != mline) {
        fail(mfile ":" mline, "mark " mletter ":" mnum " never closes with :*/")
        inmark = 0
        line = open_mark(line, p)
    }
    c = index(line, ":*/")
    e = index(line, "*/")
    if (c && c + 1 == e) {
        addline(substr(line, 1, c - 1))
        close_mark()
    } else if (e) {
        fail(mfile ":" mline, "mark " mletter ":" mnum " closes with */ instead of :*/")
        inmark = 0
    } else {
        addline(line)
    }
}

END {
    if (inmark)
        fail(mfile ":" mline, "mark " mletter ":" mnum " never closes with :*/")
    flush_pending()
    exit bad
}
' "$@" >"$tmp.rec"
status=$?
[ "$status" -le 1 ] || exit 2

# Pass 2: sort by chapter, then number; pass 3: write the Markdown.
tab=$(printf '\t')
sort -t "$tab" -k1,1n -k2,2n "$tmp.rec" >"$tmp.sorted" || exit 2

awk -F '\t' '
BEGIN {
    split("D E S H T B C V", letter, " ")
    title["D"] = "the execution decision"
    title["E"] = "direct execution"
    title["S"] = "segment tracking"
    title["H"] = "shadow descriptor tables"
    title["T"] = "memory: shadow page tables and tracing"
    title["B"] = "binary translation"
    title["C"] = "chaining"
    title["V"] = "devices"
    print "# Walkthrough"
    print ""
    print "Generated by docs/walkthrough.sh from the walkthrough marks in the"
    print "sources; do not edit.  Change the comments and run"
    print "`sh docs/walkthrough.sh` again."
    print ""
    print "Each section below is one comment in the code that opens with"
    print "`/*X:NNN` and closes with `:*/`.  Read in order, they walk through the"
    print "monitor as the patent describes it, one mechanism per chapter letter."
    print "The heading of each mark names its file and the function it belongs"
    print "to."
}
{
    n[$3]++
    rec[$3, n[$3]] = $0
}
END {
    for (k = 1; k <= 8; k++) {
        L = letter[k]
        print ""
        print "## " L " — " title[L]
        if (!n[L]) {
            print ""
            print "No marks in this chapter."
            continue
        }
        for (i = 1; i <= n[L]; i++) {
            split(rec[L, i], f, "\t")
            num = sprintf("%03d", f[2])
            where = f[4]
            if (f[5] != "")
                where = where ", `" f[5] "`"
            print ""
            print "### " L ":" num " — " where
            print ""
            m = split(f[6], lines, "\036")
            for (j = 1; j <= m; j++)
                print lines[j]
        }
    }
}
' "$tmp.sorted" >"$tmp.md" || exit 2

mv "$tmp.md" "$out" || exit 2
echo "walkthrough.sh: wrote $out ($(grep -c '^### ' "$out") marks)"
if [ "$status" -ne 0 ]; then
    echo "walkthrough.sh: malformed marks (see above); fix them in the sources" >&2
    exit 1
fi

# The manual page, generated from the same tables as --help.
$ help --man
>~ ^\.TH MXPC-DATA-MIGRATION 1 .*"mxpc\\-data\\-migration \d+\.\d+\.\d+"
>~ ^\.SH SYNOPSIS$
>~ ^\.SS backup$
>~ ^\.SS restore$
>~ ^\.SH GLOBAL OPTIONS$
>~ ^\.SH ENVIRONMENT$
>~ ^\.SH EXIT STATUS$
!! .

$ help backup --man
? 2
!~ ^error: --man takes no COMMAND

# renders without a warning
% {bin} help --man > {tmp}/m.1
~ groff -man -Tutf8 -ww -z {tmp}/m.1
!! .

~ MANWIDTH=100 man -l {tmp}/m.1 | col -b
>~ ^MXPC-DATA-MIGRATION\(1\)\s+User Commands
>~ ^NAME$
>~ ^ +mxpc-data-migration - back up and restore Mendix for Private Cloud environments$
>~ ^ +mxpc-data-migration backup -n NAMESPACE -e ENVIRONMENT -f FILE\|-\|s3://BUCKET/KEY\|$
>~ ^ +azblob://ACCOUNT/CONTAINER/BLOB \[options\]$
>~ ^ +-n, --namespace NAMESPACE$
>~ ^ +--log-format FORMAT$
>~ ^ +SSL_CERT_FILE$
>~ ^ +2 +bad command line$
!! .

# every command of --help has its section
~ n=0; for c in $({bin} --help | sed -n '/^commands:/,/^$/s/^  \([a-z-]*\) .*/\1/p'); do n=$((n + 1)); sed 's/\\-/-/g' {tmp}/m.1 | grep -qx ".SS $c" || echo "missing: $c"; done; echo "checked $n"
>! missing
>~ ^checked ([5-9]|[1-9][0-9])$

# the environment variables of --help are the manual page's
~ n=0; for v in $({bin} --help | sed -n '/^environment:/,/^$/s/^  \([A-Z_*]*\) .*/\1/p'); do n=$((n + 1)); grep -qxF ".B $v" {tmp}/m.1 || echo "missing: $v"; done; echo "checked $n"
>! missing
>~ ^checked ([5-9]|[1-9][0-9])$

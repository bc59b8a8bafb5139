# --version prints what 'version' prints, before or after a command, and exits 0.
$ --version
>~ ^mxpc-data-migration \d+\.\d+\.\d+$
>~ ^  libpq      15
!! .

~ test "$({bin} --version)" = "$({bin} version)"

$ -q --version
>~ ^mxpc-data-migration \d+\.\d+\.\d+$

$ backup --version
>~ ^mxpc-data-migration \d+\.\d+\.\d+$
!! .

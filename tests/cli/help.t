# Every command has --help (exit 0, usage on stdout, nothing on stderr).
$ --help
>~ ^usage: mxpc-data-migration COMMAND \[options\]$
>~ ^  backup    back up
>~ ^  restore   restore a backup
>~ ^  run       run a Lua script

$ help
>~ ^commands:$

$ help backup
>~ ^usage: mxpc-data-migration backup -n NAMESPACE -e ENVIRONMENT -f FILE \[options\]$

$ backup --help
>~ ^usage: mxpc-data-migration backup -n NAMESPACE -e ENVIRONMENT -f FILE \[options\]$
>~ ^  -n, --namespace NAMESPACE
>~ ^  -e, --environment ENVIRONMENT
>~ ^  -f, --file FILE
>~ ^      --force
>~ ^  -h, --help

$ restore -h
>~ ^usage: mxpc-data-migration restore -n NAMESPACE -e ENVIRONMENT -f FILE \[options\]$

$ run --help
>~ ^usage: mxpc-data-migration run SCRIPT \[ARGS...\]$

$ repl --help
>~ ^usage: mxpc-data-migration repl

$ scripts --help
>~ ^usage: mxpc-data-migration scripts export DIR \[--force\] \| scripts list$

$ version --help
>~ ^usage: mxpc-data-migration version$

$ help --help
>~ ^usage: mxpc-data-migration help \[COMMAND\] \[--man\]$

$ version
>~ ^mxpc-data-migration \d+\.\d+\.\d+$
>~ ^  lua        Lua 5\.4
>~ ^  libpq      15

$ inspect --help
>~ ^usage: mxpc-data-migration inspect FILE \[--json\]$

$ verify --help
>~ ^usage: mxpc-data-migration verify FILE \[--json\]$

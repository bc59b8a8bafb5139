# Every command has --help (exit 0, usage on stdout, nothing on stderr).
$ --help
>~ ^usage: mxpc-data-migration COMMAND \[options\]$
>~ ^  backup    back up
>~ ^  restore   restore a backup
>~ ^  run       run a Lua script

$ help
>~ ^commands:$

$ help backup
>~ ^usage: mxpc-data-migration backup -n NAMESPACE -e ENVIRONMENT -f FILE\|-\|s3://BUCKET/KEY\|azblob://ACCOUNT/CONTAINER/BLOB \[options\]$

$ backup --help
>~ ^usage: mxpc-data-migration backup -n NAMESPACE -e ENVIRONMENT -f FILE\|-\|s3://BUCKET/KEY\|azblob://ACCOUNT/CONTAINER/BLOB \[options\]$
>~ ^  -n, --namespace NAMESPACE
>~ ^  -e, --environment ENVIRONMENT
>~ ^  -f, --file FILE
>~ ^      --force
>~ ^      --archive-endpoint URL
>~ ^      --archive-region REGION
>~ ^      --archive-profile NAME
>~ ^-f - writes the archive to standard output \(never to a terminal
>~ ^  -h, --help

$ restore -h
>~ ^usage: mxpc-data-migration restore -n NAMESPACE -e ENVIRONMENT -f FILE\|-\|s3://BUCKET/KEY\|azblob://ACCOUNT/CONTAINER/BLOB\|mendix-cloud://APP/ENV\[/SNAPSHOT\] \[options\]$
>~ input: it is first copied into a private working directory in \$TMPDIR
>~ ^  -f, --file FILE +the archive to restore: a file, - \(stdin\), s3://BUCKET/KEY, azblob://ACCOUNT/CONTAINER/BLOB or mendix-cloud://APP/ENVIRONMENT\[/SNAPSHOT\]$

$ jump-pod --help
>~ ^usage: mxpc-data-migration jump-pod -n NAMESPACE -e ENVIRONMENT \[--restore\] \[--stop-app\] \[--apply \| --delete\] \[options\]$
>~ exactly the permissions of the chosen operations
>~ ^      --pg-version MAJOR
>~ ^      --apply

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
>~ ^usage: mxpc-data-migration inspect FILE\|-\|s3://BUCKET/KEY\|azblob://ACCOUNT/CONTAINER/BLOB\|mendix-cloud://APP/ENV\[/SNAPSHOT\] \[--json\]$

$ verify --help
>~ ^usage: mxpc-data-migration verify FILE\|-\|s3://BUCKET/KEY\|azblob://ACCOUNT/CONTAINER/BLOB\|mendix-cloud://APP/ENV\[/SNAPSHOT\] \[--json\]$

$ copy --help
>~ ^usage: mxpc-data-migration copy --from NAMESPACE/ENVIRONMENT --to NAMESPACE/ENVIRONMENT \[options\]$
>~ ^ +--copy-mode MODE +how files are copied: auto \(default\), server \(CopyObject on the same endpoint\) or stream$
>~ ^ +--to-context NAME

# Bad command lines exit 2 with one error line, the usage and a pointer to --help.
$
? 2
! error: missing COMMAND
! usage: mxpc-data-migration COMMAND [options]
! Try 'mxpc-data-migration --help' for more information.

$ frobnicate
? 2
! error: unknown command "frobnicate"
! usage: mxpc-data-migration COMMAND [options]
! Try 'mxpc-data-migration --help' for more information.

$ backup -n mendix -e demo-app
? 2
! error: missing required option -f/--file FILE
! usage: mxpc-data-migration backup -n NAMESPACE -e ENVIRONMENT -f FILE|-|s3://BUCKET/KEY|azblob://ACCOUNT/CONTAINER/BLOB [options]
! Try 'mxpc-data-migration backup --help' for more information.

$ backup -e demo-app -f x.tar.gz
? 2
!~ ^error: missing required option -n/--namespace NAMESPACE$

$ restore -n mendix -f x.tar.gz
? 2
!~ ^error: missing required option -e/--environment ENVIRONMENT$

$ backup -n Mendix -e demo-app -f x.tar.gz
? 2
!~ ^error: invalid -n/--namespace "Mendix": use lowercase letters

$ backup -n mendix -e demo_app -f x.tar.gz
? 2
!~ ^error: invalid -e/--environment "demo_app"

$ backup -n mendix -e demo-app -f
? 2
!~ ^error: option -f/--file needs a value \(FILE\)$

$ backup -n mendix -e demo-app -f x --bogus
? 2
!~ ^error: unknown option --bogus$

$ backup -n mendix -e demo-app -f x -z
? 2
!~ ^error: unknown option -z$

$ backup -n mendix -e demo-app -f x --compression-level 10
? 2
!~ ^error: --compression-level must be a whole number from 0 to 9, got "10"$

$ backup -n mendix -e demo-app -f x --compression-level fast
? 2
!~ ^error: --compression-level must be a whole number from 0 to 9, got "fast"$

$ backup -n mendix -e demo-app -f x --compression-level 1.5
? 2
!~ ^error: --compression-level must be a whole number from 0 to 9, got "1.5"$

$ backup -n mendix -e demo-app -f x --database-only --compression-level 1
? 2
!~ ^error: --compression-level applies to the archive; a database-only backup is pg_dump's own file$

$ backup -n mendix -n other -e demo-app -f x
? 2
!~ ^error: option -n/--namespace given more than once$

$ backup -n mendix -e demo-app -f x extra
? 2
!~ ^error: unexpected argument "extra"$

$ --log-format xml version
? 2
!~ ^error: invalid --log-format "xml": expected text or json$

$ run
? 2
! error: missing SCRIPT
! usage: mxpc-data-migration run SCRIPT [ARGS...]
! Try 'mxpc-data-migration run --help' for more information.

$ scripts
? 2
!~ ^error: missing ACTION \(export or list\)$

$ scripts explode
? 2
!~ ^error: unknown action "explode"

$ scripts export
? 2
!~ ^error: missing DIR for 'scripts export'$

$ help nosuch
? 2
!~ ^error: unknown command "nosuch"$


# Valid command lines that fail in the outside world exit 1 with one line and a hint,
# and leave nothing behind.
$ KUBECONFIG=/nonexistent/kubeconfig backup -n mendix -e demo-app -f x.tar.gz
? 1
!~ ^error: no Kubernetes configuration found: KUBECONFIG=/nonexistent/kubeconfig names no existing file
!~ ^hint: pass a kubeconfig file

# (nothing was written, not even a temporary file)
% test -z "$(ls -A {tmp})"

$ KUBECONFIG=/nonexistent/kubeconfig backup -n mendix -e demo-app -f no/such/dir/x.tar.gz
? 1
! error: cannot write no/such/dir/x.tar.gz: the directory no/such/dir does not exist
! hint: create it first, or choose another place for the backup

% mkdir -p {tmp}/out
$ KUBECONFIG=/nonexistent/kubeconfig backup -n mendix -e demo-app -f out
? 1
! error: cannot write out: it is a directory
! hint: give the archive's file name, e.g. out/backup.tar.gz

% touch {tmp}/exists.tar.gz
$ KUBECONFIG=/nonexistent/kubeconfig backup -n mendix -e demo-app -f exists.tar.gz
? 1
! error: exists.tar.gz already exists
! hint: choose another file name, or use --force to replace it

$ restore -n mendix -e demo-copy -f x.tar.gz --new-snapshot
? 2
! error: --new-snapshot makes a snapshot in Mendix Cloud: it needs -f mendix-cloud://APP/ENVIRONMENT
! usage: mxpc-data-migration restore -n NAMESPACE -e ENVIRONMENT -f FILE|-|s3://BUCKET/KEY|azblob://ACCOUNT/CONTAINER/BLOB|mendix-cloud://APP/ENV[/SNAPSHOT] [options]
! Try 'mxpc-data-migration restore --help' for more information.

$ restore -n mendix -e demo-copy -f x.tar.gz --mendix-credentials creds
? 2
! error: --mendix-credentials is for mendix-cloud:// locations
! usage: mxpc-data-migration restore -n NAMESPACE -e ENVIRONMENT -f FILE|-|s3://BUCKET/KEY|azblob://ACCOUNT/CONTAINER/BLOB|mendix-cloud://APP/ENV[/SNAPSHOT] [options]
! Try 'mxpc-data-migration restore --help' for more information.

$ restore -n mendix -e demo-copy -f mendix-cloud://app/Production/51dc7872-771e-4c3e-853b-352359444db6 --new-snapshot
? 2
! error: --new-snapshot and a SNAPSHOT in mendix-cloud://app/Production/51dc7872-771e-4c3e-853b-352359444db6 exclude each other
! usage: mxpc-data-migration restore -n NAMESPACE -e ENVIRONMENT -f FILE|-|s3://BUCKET/KEY|azblob://ACCOUNT/CONTAINER/BLOB|mendix-cloud://APP/ENV[/SNAPSHOT] [options]
! Try 'mxpc-data-migration restore --help' for more information.

$ KUBECONFIG=/nonexistent/kubeconfig backup -n mendix -e demo-app -f mendix-cloud://app/Production
? 2
! error: cannot back up to mendix-cloud://app/Production: Mendix Cloud takes archives only through the Mendix Portal, not through its API: back up to a file and upload that (backup --help says how)
! usage: mxpc-data-migration backup -n NAMESPACE -e ENVIRONMENT -f FILE|-|s3://BUCKET/KEY|azblob://ACCOUNT/CONTAINER/BLOB [options]
! Try 'mxpc-data-migration backup --help' for more information.

$ restore -n mendix -e demo-copy -f x.tar.gz --database-only --files-only
? 2
! error: --database-only and --files-only exclude each other
! usage: mxpc-data-migration restore -n NAMESPACE -e ENVIRONMENT -f FILE|-|s3://BUCKET/KEY|azblob://ACCOUNT/CONTAINER/BLOB|mendix-cloud://APP/ENV[/SNAPSHOT] [options]
! Try 'mxpc-data-migration restore --help' for more information.

$ restore -n mendix -e demo-copy -f x.tar.gz --database-only --delete-extra-files
? 2
! error: --delete-extra-files and --database-only exclude each other: the files are left as they are
! usage: mxpc-data-migration restore -n NAMESPACE -e ENVIRONMENT -f FILE|-|s3://BUCKET/KEY|azblob://ACCOUNT/CONTAINER/BLOB|mendix-cloud://APP/ENV[/SNAPSHOT] [options]
! Try 'mxpc-data-migration restore --help' for more information.

$ restore -n mendix -e demo-copy -f x.tar.gz --safety-backup x.tar.gz
? 2
! error: --safety-backup must not be the archive to restore (x.tar.gz)
! usage: mxpc-data-migration restore -n NAMESPACE -e ENVIRONMENT -f FILE|-|s3://BUCKET/KEY|azblob://ACCOUNT/CONTAINER/BLOB|mendix-cloud://APP/ENV[/SNAPSHOT] [options]
! Try 'mxpc-data-migration restore --help' for more information.

$ restore --namespace=mendix --environment demo-copy --file x.tar.gz
? 1
!~ ^error: backup file x.tar.gz does not exist$

# A scripts directory that is not there is an error, not silently ignored.
$ --scripts /nonexistent/mxpc-scripts version
? 2
! error: --scripts /nonexistent/mxpc-scripts: no such directory
! usage: mxpc-data-migration COMMAND [options]
! Try 'mxpc-data-migration --help' for more information.

$ backup --scripts=/nonexistent/mxpc-scripts -n mendix -e demo-app -f x.tar.gz
? 2
!~ ^error: --scripts /nonexistent/mxpc-scripts: no such directory$

% touch {tmp}/plain-file
$ scripts list --scripts plain-file
? 2
!~ ^error: --scripts plain-file: not a directory$

$ MXPC_SCRIPTS=/nonexistent/mxpc-scripts scripts list
? 2
! error: MXPC_SCRIPTS=/nonexistent/mxpc-scripts: no such directory
! usage: mxpc-data-migration COMMAND [options]
! Try 'mxpc-data-migration --help' for more information.

% mkdir -p {tmp}/myscripts
$ --scripts myscripts version
>~ ^mxpc-data-migration 

# The file selection options and --hooks are checked before any work.
$ backup -n mendix -e demo-app -f x.tar.gz --files-larger-than 10XB
? 2
!~ ^error: invalid --files-larger-than "10XB": expected a size such as 4096, 512k, 10MB or 10MiB$

$ backup -n mendix -e demo-app -f x.tar.gz --files-changed-since 2024-02-30
? 2
!~ ^error: invalid --files-changed-since "2024-02-30": no such day

$ backup -n mendix -e demo-app -f x.tar.gz --files-of Attachment
? 2
!~ ^error: invalid --files-of "Attachment": expected Module.Entity

$ backup -n mendix -e demo-app -f x.tar.gz --files-larger-than 2M --files-smaller-than 1MiB
? 2
!~ ^error: --files-larger-than 2M and --files-smaller-than 1MiB select no file$

$ restore -n mendix -e demo-app -f x.tar.gz --hooks /nonexistent/hooks.lua
? 2
!~ ^error: invalid --hooks "/nonexistent/hooks.lua": no such file$

# schedule, prune, list s3:// and restore --at (docs/schedule.md)
$ schedule -n mendix -e demo-app --to s3://bk/nightly --cron "0 2 * * *" --arch x86_64
? 2
!~ ^error: invalid --arch "x86_64": expected amd64 or arm64$

$ jump-pod -n mendix -e demo-app --pg-version 15 --arch aarch64
? 2
!~ ^error: invalid --arch "aarch64": expected amd64 or arm64$

$ schedule -n mendix --to s3://bk/nightly --cron "0 2 * * *"
? 2
!~ ^error: give either -e ENVIRONMENT or --all$

$ schedule -n mendix -e demo-app --all --to s3://bk/nightly --cron "0 2 * * *"
? 2
!~ ^error: give either -e ENVIRONMENT or --all$

$ schedule -n mendix -e demo-app --to /backups --cron "0 2 * * *"
? 2
!~ ^error: invalid --to "/backups": expected s3://BUCKET/PREFIX or azblob://ACCOUNT/CONTAINER/PREFIX$

$ schedule -n mendix -e demo-app --to s3://bk/nightly --cron "0 2 * *"
? 2
!~ ^error: --cron: "0 2 \* \*" has 4 fields; a schedule has five

$ schedule -n mendix -e demo-app --to s3://bk/nightly --cron "0 2 * * *" --timezone "../etc/passwd"
? 2
!~ ^error: invalid --timezone "../etc/passwd": expected a time zone name

$ schedule -n mendix -e demo-app --to s3://bk/nightly --cron "0 2 * * *" --keep-daily 0
? 2
!~ ^error: no --keep-\* option keeps anything

$ prune s3://bk/nightly
? 2
!~ ^error: give the policy: --keep-last, --keep-daily

$ prune s3://bk/nightly --keep-daily seven
? 2
!~ ^error: invalid --keep-daily "seven": a whole number or 'unlimited'$

$ prune s3://bk/nightly --keep-within 3x
? 2
!~ ^error: invalid --keep-within "3x"

$ backup -n mendix -e demo-app -f x.tar.gz --keep-last 2
? 2
!~ ^error: --keep-\* options prune a schedule's archives: they need -f s3://BUCKET/PREFIX/

$ restore -n mendix -e demo-app -f x.tar.gz --at 2026-01-01
? 2
!~ ^error: --at picks an archive of a schedule

$ restore -n mendix -e demo-app -f s3://bk/nightly/mendix/demo-app/ --at yesterday
? 2
!~ ^error: invalid --at "yesterday"

$ list s3://bk/nightly --max-age soon
? 2
!~ ^error: invalid --max-age "soon": a duration such as 26h, 2d$

$ list mendix-cloud://app/Production --max-age 26h
? 2
!~ ^error: --max-age applies to s3:// and azblob:// locations$

# copy: --from and --to are NAMESPACE/ENVIRONMENT, never the same environment
$ copy --from mendix/demo-app
? 2
! error: missing required option --to NS/ENV
! usage: mxpc-data-migration copy --from NAMESPACE/ENVIRONMENT --to NAMESPACE/ENVIRONMENT [options]
! Try 'mxpc-data-migration copy --help' for more information.

$ copy --from demo-app --to mendix/demo-copy
? 2
!~ ^error: invalid --from "demo-app": expected NAMESPACE/ENVIRONMENT, e.g. mendix/my-app-prod$

$ copy --from mendix/demo-app --to Mendix/demo-copy
? 2
!~ ^error: invalid --to "Mendix/demo-copy": namespace "Mendix": use lowercase letters

$ copy --from mendix/demo-app --to mendix/demo-app
? 2
!~ ^error: --from and --to are the same environment \(mendix/demo-app\): copy into another environment$

$ copy --from mendix/demo-app --to mendix/demo-copy --copy-mode fast
? 2
!~ ^error: invalid --copy-mode "fast"

$ copy --from mendix/demo-app --to mendix/demo-copy --database-only --files-only
? 2
!~ ^error: --database-only and --files-only exclude each other$

$ copy --from mendix/demo-app --to mendix/demo-copy --database-only --files-of System.Image
? 2
!~ ^error: --files-\* options select files; --database-only copies none$

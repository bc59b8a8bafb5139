# inspect and verify: no cluster needed; verify exits 0 only when the archive
# would restore, 1 with one error line otherwise, 2 on usage errors.
% mkdir -p {tmp}/m/db {tmp}/m/tree/0d/3e && cp {src}/tests/archive/fixtures/sample.backup {tmp}/m/db/db.backup
% printf '{"duration":"0","dumpSize":"2387","modelVersion":"1.0.0.40","databaseSize":"9730584","filesSize":"5"}' > {tmp}/m/.metadata
% printf hello > {tmp}/m/tree/0d/3e/0d3e301f-5551-46f8-ad44-8de2be084c95
% tar -czf {tmp}/good.tar.gz -C {tmp}/m .metadata db tree
$ inspect good.tar.gz
>~ ^file: +good.tar.gz$
>~ ^kind: +backup archive \(gzip-compressed tar, [0-9.]+ KiB\)$
>~ ^metadata: +duration=0 dumpSize=2387 modelVersion=1.0.0.40 databaseSize=9730584 filesSize=5$
>~ ^entries: +7 \(1 file, 4 directories\)$
>~ ^files: +1, 5 B \(5 bytes\), layout nested$
>~ ^database dump: +2.3 KiB \(2387 bytes\), custom format, gzip compression$
>~ ^dump version: +archive version 1.14, made by pg_dump 15\.
>~ ^dump contents: +database app, 9 TOC entries
>~ ^Mendix Cloud: +compatible: restores in Mendix Cloud and with this tool$
>! ^warning
>! ^OK

$ verify good.tar.gz
>~ ^Mendix Cloud: +compatible
>~ ^OK: good.tar.gz would restore with this tool \(structure, every byte and pg_restore -l checked\)$

$ verify --json good.tar.gz
>~ ^\{.*"ok":true
>~ "layout":"nested"
>~ "mendix_cloud":true

# a database-only backup: the bare dump
$ verify m/db/db.backup
>~ ^kind: +database-only backup \(bare custom-format dump\), 2.3 KiB$
>~ ^OK: m/db/db.backup would restore

# a bare dump by pg_dump 16 (archive version 1.15): inspect warns
% python3 -c 'import struct,sys; i=lambda v: bytes([v<0])+struct.pack("<I",abs(v)); s=lambda t: i(len(t))+t.encode(); sys.stdout.buffer.write(b"PGDMP"+bytes([1,15,0,4,8,1,1])+b"".join(i(v) for v in (0,0,12,1,0,124,0))+s("app")+s("16.4")+s("16.4")+i(0))' > {tmp}/db16.backup
$ inspect db16.backup
>~ ^dump version: +archive version 1.15, made by pg_dump 16.4 from server 16.4$
>~ ^Mendix Cloud: +restores with this tool but not in Mendix Cloud$
>~ ^warning: the dump's archive version 1.15 \(pg_dump 16.4\) is newer than 1.14

$ inspect --json db16.backup
>~ "mendix_cloud":false
>~ "verdict":"restores with this tool but not in Mendix Cloud"

% head -c 700 {tmp}/good.tar.gz > {tmp}/cut.tar.gz
$ verify cut.tar.gz
? 1
! error: cut.tar.gz: entry "db/db.backup": truncated gzip data (the input ends inside the compressed stream)

$ verify --json cut.tar.gz
? 1
>~ ^\{.*"ok":false
>~ "code":"archive_invalid"
! error: cut.tar.gz: entry "db/db.backup": truncated gzip data (the input ends inside the compressed stream)

$ verify missing.tar.gz
? 1
! error: backup file missing.tar.gz does not exist

# the archive from standard input, as restore -f - reads it
$ verify -
< good.tar.gz
>~ ^file: +standard input$
>~ ^OK: standard input would restore with this tool

$ inspect --json -
< m/db/db.backup
>~ ^\{.*"ok":true
>~ "file":"standard input"

$ inspect -
? 1
!~ ^error: standard input is empty
!~ ^hint: pipe the archive in

$ verify -
< cut.tar.gz
? 1
!~ ^error: standard input: entry "db/db\.backup": truncated gzip data

$ inspect s3:/bucket
? 1
!~ ^error: backup file s3:/bucket does not exist

$ inspect s3://bucket
? 2
!~ ^error: s3://bucket is not an S3 object: write s3://BUCKET/KEY

$ verify
? 2
! error: missing FILE
! usage: mxpc-data-migration verify FILE|-|s3://BUCKET/KEY|azblob://ACCOUNT/CONTAINER/BLOB|mendix-cloud://APP/ENV[/SNAPSHOT] [--json]
! Try 'mxpc-data-migration verify --help' for more information.

$ inspect a.tar.gz b.tar.gz
? 2
!~ ^error: unexpected argument "b.tar.gz"$

$ inspect --yaml good.tar.gz
? 2
!~ ^error: unknown option --yaml$

$ help
>~ ^  inspect +show what a backup archive holds \(no cluster needed\)$
>~ ^  verify +check that a backup archive would restore \(no cluster needed\)$

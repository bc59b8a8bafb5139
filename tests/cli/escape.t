# Nothing from outside reaches the terminal raw: escape sequences, line breaks
# and bytes that are not UTF-8 are shown escaped (\x1b, \r\n, \xff) in log
# lines, error lines and inspect's report; JSON output stays valid UTF-8; and
# an archive whose .metadata holds such things is not called compatible.
% mkdir -p {tmp}/h/db && cp {src}/tests/archive/fixtures/sample.backup {tmp}/h/db/db.backup
% printf '{"duration":"0\xff\xfe","dumpSize":"2387","modelVersion":"1.0.0.40\\u001b[31mred\\u009b2J","databaseSize":"9730584","filesSize":"5\\r\\nwarning: forged"}' > {tmp}/h/.metadata
% tar -czf {tmp}/hostile.tar.gz -C {tmp}/h .metadata db
$ inspect hostile.tar.gz
>~ ^metadata: +duration=0\\xff\\xfe dumpSize=2387 modelVersion=1\.0\.0\.40\\x1b\[31mred\\u\{9b\}2J databaseSize=9730584 filesSize=5\\r\\nwarning: forged$
>~ ^Mendix Cloud: +restores with this tool but not in Mendix Cloud$
>~ ^warning: \.metadata: the value of "duration" holds control characters or bytes that are not UTF-8: "0\\xff\\xfe"
>~ ^warning: \.metadata: the value of "modelVersion" holds control characters
>! ^warning: forged

# not one raw control character, C1 control or byte that is not UTF-8 in the report
~ {bin} inspect {tmp}/hostile.tar.gz | python3 -c 'import sys, unicodedata; t = sys.stdin.buffer.read().decode("utf-8", "strict"); print(sum(1 for c in t if c != "\n" and unicodedata.category(c) in ("Cc", "Cf")))'
> 0

~ {bin} inspect --json {tmp}/hostile.tar.gz | python3 -c 'import json, sys; d = json.loads(sys.stdin.buffer.read().decode("utf-8", "strict")); print(d["metadata"]["duration"]); print(d["metadata"]["filesSize"]); print(d["compatibility"]["mendix_cloud"])'
> 0\xff\xfe
> 5\r\nwarning: forged
> False

$ verify hostile.tar.gz
>~ ^Mendix Cloud: +restores with this tool but not in Mendix Cloud$
>~ ^OK: hostile.tar.gz would restore with this tool

# log and error lines: one line each, escaped, also with --log-format json
% printf 'local log = require "mxpc.log"\nlog.warn("host \\27[31mred\\27[0m", {endpoint = "http://x\\r\\ninfo: backup written", name = "a\\255b"})\nerror(require("mxpc.error").new{code = "x", message = "bad \\27]0;title\\7 host\\r\\nerror: forged", hint = "see \\226\\128\\174txet"})\n' > {tmp}/log.lua
$ run log.lua
? 1
! warn: host \x1b[31mred\x1b[0m endpoint="http://x\r\ninfo: backup written" name=a\xffb
! error: bad \x1b]0;title\x07 host\r\nerror: forged
! hint: see \u{202e}txet

~ {bin} --log-format json run {tmp}/log.lua 2>&1 >/dev/null | python3 -c 'import json, sys; [print(json.loads(l)["level"], repr(json.loads(l).get("name", json.loads(l).get("hint")))) for l in sys.stdin.buffer.read().decode("utf-8", "strict").splitlines()]'
> warn 'a\\xffb'
> error 'see \u202etxet'

# an error holding a program's output of several lines (lines = true: psql's
# ERROR with its HINT) prints as lines, each escaped, the later ones indented
# (none can pass for a line of its own); JSON keeps it one string
% printf 'error(require("mxpc.error").new{code = "sql", lines = true, message = "ERROR:  relation \\"conf_evt_t\\" does not exist\\nHINT:  Perhaps you meant \\27[2J\\"conf_evt\\".\\n"})\n' > {tmp}/lines.lua
$ run lines.lua
? 1
! error: ERROR:  relation "conf_evt_t" does not exist
!   HINT:  Perhaps you meant \x1b[2J"conf_evt".

~ {bin} --log-format json run {tmp}/lines.lua 2>&1 >/dev/null | python3 -c 'import json, sys; print(repr(json.loads(sys.stdin.read())["msg"]))'
> 'ERROR:  relation "conf_evt_t" does not exist\nHINT:  Perhaps you meant \x1b[2J"conf_evt".\n'

# `run`: arg as in lua, exit codes, one-line errors, --debug tracebacks.
% printf 'print(arg[0], #arg, arg[1], arg[2], ...)\n' > {tmp}/args.lua
$ run args.lua one --two
> args.lua	2	one	--two	one	--two

% printf 'return 7\n' > {tmp}/seven.lua
$ run seven.lua
? 7

% printf 'local function f()\n  error("something broke")\nend\nf()\n' > {tmp}/fail.lua
# No message shows a Lua source position unless --debug.
$ run fail.lua
? 1
! error: something broke

$ --debug run fail.lua
? 1
!~ ^error: fail.lua:2: something broke$
!~ ^stack traceback:$
!~ fail.lua:2: in (local|upvalue|function) 'f'

$ run fail.lua --debug
? 1
!! stack traceback

% printf 'require("mxpc.error").raise("conn", "cannot reach the database", "check the host")\n' > {tmp}/obj.lua
$ run obj.lua
? 1
! error: cannot reach the database
! hint: check the host

% printf 'require("mxpc.log").secret("hunter2")\nerror("login failed with password hunter2")\n' > {tmp}/secret.lua
$ run secret.lua
? 1
! error: login failed with password ***

$ --log-format json run obj.lua
? 1
!~ ^\{"time":"[^"]+","level":"error","msg":"cannot reach the database","code":"conn","event":"error","exit":1,"hint":"check the host"\}$

# C reports an existing output by its code; the command line words the hint
# (only a command with --force offers it)
% printf 'local fs = require "mxpc.fs"\nassert(fs.atomic_writer(arg[0]))\n' > {tmp}/exists.lua
$ run exists.lua
? 1
! error: exists.lua already exists
! hint: choose another file name

$ run no-such-file.lua
? 1
!~ ^error: cannot open no-such-file.lua

# a C module's refusal (luaL_error), an error raised for the caller (level 2),
# and one raised again as a string by a handler: the message alone
% printf 'local s3 = require "mxpc.s3"\ns3.client{endpoint = "http://someone:hunter22@127.0.0.1:9", access_key = "AKIAEXAMPLE", secret_key = "wJalrXUtnFEMIK7MDENG"}\n' > {tmp}/endpoint.lua
$ run endpoint.lua
? 1
! error: S3 endpoint http://someone:***@127.0.0.1:9 holds a user name and password
! hint: write it as https://host[:port][/path]: the credentials are the access key and the secret key

$ --debug run endpoint.lua
? 1
!~ ^error: S3 endpoint http://someone:\*\*\*@127\.0\.0\.1:9 holds a user name and password$
!~ ^stack traceback:$
!~ endpoint\.lua:2: in
!! hunter22

% printf 'local function check(v) if not v then error("v is required", 2) end end\nlocal function f() check(nil) end\nlocal ok, e = pcall(f)\nerror(e)\n' > {tmp}/level.lua
$ run level.lua
? 1
! error: v is required

% printf 'local function f() error("deep") end\nlocal ok, e = pcall(f)\nerror("wrapped: " .. e, 0)\n' > {tmp}/wrapped.lua
$ run wrapped.lua
? 1
! error: wrapped: wrapped.lua:1: deep

# text that only looks like a position stays
% printf 'error("db.example:5432: connection refused", 0)\n' > {tmp}/hostport.lua
$ run hostport.lua
? 1
! error: db.example:5432: connection refused

# a syntax error in a script names where it is
% printf 'x = = 1\n' > {tmp}/syntax.lua
$ run syntax.lua
? 1
!~ ^error: syntax.lua:1: unexpected symbol

# Every module is reachable under the mxpc namespace, plus cjson.
% printf 'for _, m in ipairs{"mxpc.error","mxpc.log","mxpc.fs","mxpc.runtime","mxpc.args","mxpc.scripts","cjson"} do io.write(m, "=", type(require(m)), " ") end print()\n' > {tmp}/mods.lua
$ run mods.lua
> mxpc.error=table mxpc.log=table mxpc.fs=table mxpc.runtime=table mxpc.args=table mxpc.scripts=table cjson=table 

# arg holds what came before the script at negative indices, as in lua.
% printf 'print(arg[-4] == nil, arg[-3]:match("mxpc%%-data%%-migration$") ~= nil, arg[-2], arg[-1], arg[0], arg[1])\n' > {tmp}/neg.lua
$ -v run neg.lua x
> true	true	-v	run	neg.lua	x

# Global options work before and after the command.
$ -q run seven.lua
? 7

$ run --debug seven.lua
? 7

# `run`: arg as in lua, exit codes, one-line errors, --debug tracebacks.
% printf 'print(arg[0], #arg, arg[1], arg[2], ...)\n' > {tmp}/args.lua
$ run args.lua one --two
> args.lua	2	one	--two	one	--two

% printf 'return 7\n' > {tmp}/seven.lua
$ run seven.lua
? 7

% printf 'local function f()\n  error("something broke")\nend\nf()\n' > {tmp}/fail.lua
$ run fail.lua
? 1
! error: fail.lua:2: something broke

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
! error: secret.lua:2: login failed with password ***

$ --log-format json run obj.lua
? 1
!~ ^\{"time":"[^"]+","level":"error","msg":"cannot reach the database","hint":"check the host"\}$

$ run no-such-file.lua
? 1
!~ ^error: cannot open no-such-file.lua

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

# The REPL reads lines from stdin when it has no terminal: expressions print
# their values, statements run, unfinished chunks continue, errors print one
# line and the prompt goes on, results are redacted.
% printf '1 + 1\nlocal x = 5\nfunction f(a)\n  return a * 2\nend\nf(21)\n{a = 1, b = {2, 3}, "x"}\nerror("boom")\nx = = 1\nfs.stat("/").type\nlog.secret("hunter2")\n"pw: hunter2"\nerrors.raise("conn", "no route", "check the host")\nreturn 1, nil, "three"\n' > {tmp}/in.txt
$ repl
< in.txt
> 2
> 42
> {"x", a = 1, b = {2, 3}}
> error: stdin:1: boom
> error: stdin:1: unexpected symbol near '='
> "directory"
> "pw: ***"
> error: no route
> hint: check the host
> 1	nil	"three"

% printf 'for i = 1, 3 do\n' > {tmp}/unfinished.txt
$ repl
< unfinished.txt
> error: unfinished chunk at the end of input

# --debug adds the traceback of an error
% printf 'error("deep")\n' > {tmp}/err.txt
$ --debug repl
< err.txt
>~ ^error: stdin:1: deep$
>~ ^stack traceback:$

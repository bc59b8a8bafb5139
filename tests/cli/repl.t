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

# a Secret shows its keys, not its values (base64 hides nothing); text from
# outside is escaped, print too; a secret with a quote is still found
% printf '{kind = "Secret", type = "Opaque", metadata = {name = "s"}, data = {pw = "aHVudGVyMg==", host = "ZGI="}}\n{items = {{type = "Opaque", metadata = {name = "t"}, data = {k = "eA=="}}}}\n"a\\27[31m\\r\\nb\\255"\nprint("x\\27]0;t\\7", "\\226\\128\\174y")\nlog.secret([[p"w]])\n[[pw is p"w]]\n' > {tmp}/hostile.txt
$ repl
< hostile.txt
> {
>   data = {host = "***", pw = "***"},
>   kind = "Secret",
>   metadata = {name = "s"},
>   type = "Opaque"
> }
> {items = {{data = {...}, metadata = {...}, type = "Opaque"}}}
> "a\x1b[31m\r\nb\xff"
> x\x1b]0;t\x07	\u{202e}y
> "pw is ***"

# nil and an error object, as a failing function returns them, show as an
# error with its hint; a wide table prints over several lines
% printf '%s\n' 'fs.stat("/nonexistent/x")' 'errors.new{code = "x", message = "went wrong", hint = "try again"}' 'return nil, errors.new{code = "x", message = "failed", hint = "do this"}' '{first = string.rep("a", 40), second = string.rep("b", 40)}' > {tmp}/nilerr.txt
$ repl
< nilerr.txt
> nil
> error: cannot stat /nonexistent/x: No such file or directory
> went wrong
> nil
> error: failed
> hint: do this
> {
>   first = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
>   second = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
> }

# bare `help`, as in a shell, shows the help (not the function's address)
% printf 'help\n  help  \nx = help\nprint(type(x))\n' > {tmp}/bare.txt
$ repl
< bare.txt
>~ ^modules \(help\(name\) lists the functions\):$
>! ^function: 0x
>~ ^function$

# A misspelled command, option, action or shell: the usage error names the
# closest candidates ("did you mean"), and nothing when none is close.
$ bakup -n mendix -e demo-app -f x
? 2
! error: unknown command "bakup" (did you mean backup?)
! usage: mxpc-data-migration COMMAND [options]
! Try 'mxpc-data-migration --help' for more information.

$ retsore
? 2
!~ ^error: unknown command "retsore" \(did you mean restore\?\)$

$ verfy x.tar.gz
? 2
!~ ^error: unknown command "verfy" \(did you mean verify\?\)$

$ help inspcet
? 2
!~ ^error: unknown command "inspcet" \(did you mean inspect\?\)$

$ frobnicate
? 2
!~ ^error: unknown command "frobnicate"$

$ backup -n mendix -e demo-app -f x --forse
? 2
!~ ^error: unknown option --forse \(did you mean --force\?\)$
!~ ^usage: mxpc-data-migration backup

$ restore --namepsace mendix -e demo-app -f x
? 2
!~ ^error: unknown option --namepsace \(did you mean --namespace\?\)$

$ restore -n mendix -e demo-app -f x --fiels-only
? 2
!~ ^error: unknown option --fiels-only \(did you mean --files-only\?\)$

$ backup -n mendix -e demo-app -f x --databse-only
? 2
!~ ^error: unknown option --databse-only \(did you mean --database-only\?\)$

$ --verbos version
? 2
!~ ^error: unknown option --verbos \(did you mean --verbose\?\)$

$ backup -n mendix -e demo-app -f x --zzz
? 2
!~ ^error: unknown option --zzz$

$ scripts exprot
? 2
!~ ^error: unknown action "exprot" \(did you mean export\?\)$

$ scripts explode
? 2
!~ ^error: unknown action "explode" \(expected export or list\)$

$ completion bsh
? 2
!~ ^error: unknown shell "bsh" \(did you mean bash or zsh\?\)$

$ completion fish
? 2
!~ ^error: unknown shell "fish" \(expected bash or zsh\)$

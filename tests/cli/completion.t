# Completion scripts for bash and zsh, generated from the command table.
% {bin} completion bash > {tmp}/c.bash
% {bin} completion zsh > {tmp}/_c

# loads in bash and registers the function
~ bash -c 'source {tmp}/c.bash; complete -p mxpc-data-migration'
> complete -F _mxpc_data_migration mxpc-data-migration

# what bash offers for a command line (the last word is the one completed)
% printf '%s\n' 'source {tmp}/c.bash' 'COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _mxpc_data_migration' 'printf "%s\n" "${COMPREPLY[@]}"' > {tmp}/complete.sh

~ bash {tmp}/complete.sh mxpc-data-migration bac
> backup

~ bash {tmp}/complete.sh mxpc-data-migration re
> restore
> repl

~ bash {tmp}/complete.sh mxpc-data-migration -v --log-format json ver
> verify
> version

~ bash {tmp}/complete.sh mxpc-data-migration backup --data
> --database-only

~ bash {tmp}/complete.sh mxpc-data-migration restore --f
> --file
> --files-only

~ bash {tmp}/complete.sh mxpc-data-migration restore --d
> --database-only
> --dry-run
> --delete-extra-files
> --db-sslmode
> --debug

~ bash {tmp}/complete.sh mxpc-data-migration inspect --log-format ''
> text
> json

~ bash {tmp}/complete.sh mxpc-data-migration help comp
> completion

~ bash {tmp}/complete.sh mxpc-data-migration completion ''
> bash
> zsh

~ bash {tmp}/complete.sh mxpc-data-migration scripts ex
> export

% mkdir -p {tmp}/dir && touch {tmp}/dir/app.tar.gz

~ bash {tmp}/complete.sh mxpc-data-migration restore -n mendix -f dir/ap
> dir/app.tar.gz

# nothing to offer for a namespace
~ bash {tmp}/complete.sh mxpc-data-migration backup -n ''

# zsh: valid syntax, and registered for the program by compinit's compdef
~ zsh -n {tmp}/_c

~ zsh -f -c 'autoload -Uz compinit; compinit -u -D -d {tmp}/zcompdump; source {tmp}/_c; print -r -- $_comps[mxpc-data-migration]'
> _mxpc_data_migration

~ head -1 {tmp}/_c
> #compdef mxpc-data-migration

# what zsh offers (its completion system on a pseudo-terminal, tests/cli/zcomplete.zsh)
~ timeout 30 zsh -f {src}/tests/cli/zcomplete.zsh {tmp}/_c 'mxpc-data-migration bac'
> backup

~ timeout 30 zsh -f {src}/tests/cli/zcomplete.zsh {tmp}/_c 'mxpc-data-migration -v re'
> restore
> repl

~ timeout 30 zsh -f {src}/tests/cli/zcomplete.zsh {tmp}/_c 'mxpc-data-migration restore -n x --fi'
> --file
> --files-only

~ timeout 30 zsh -f {src}/tests/cli/zcomplete.zsh {tmp}/_c 'mxpc-data-migration inspect --log-format '
> text
> json

~ timeout 30 zsh -f {src}/tests/cli/zcomplete.zsh {tmp}/_c 'mxpc-data-migration help ver'
> verify
> version

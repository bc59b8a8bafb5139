#!/usr/bin/env zsh
# Prints what zsh's completion offers for a command line:
#   zsh -f zcomplete.zsh COMPLETION_FILE 'words to complete'
# Runs an interactive zsh on a pseudo-terminal, loads COMPLETION_FILE after
# compinit, types the words and a Tab, and prints each match that the
# completion functions add, one a line.
zmodload zsh/zpty || exit 2
setup=$(mktemp) || exit 2
trap 'rm -f $setup' EXIT
cat > $setup <<SETUP
PS1=
autoload -Uz compinit && compinit -u -D
source ${(q)1}
bindkey '^I' complete-word
comppostfuncs=(exit)
compadd() {
  if [[ \${(j: :)@} == *' -O '* || \${(j: :)@} == *' -A '* || \${(j: :)@} == *' -D '* ]]; then
    builtin compadd "\$@"; return
  fi
  local -a __m
  builtin compadd -A __m "\$@"
  (( \$#__m )) && print -rl -- '' '='\${^__m}
  builtin compadd "\$@"
}
print -r -- READY
SETUP
zpty z zsh -f -i
zpty -w z "source ${(q)setup}"
local line
while zpty -r z line; do [[ $line == READY* ]] && break; done
zpty -w -n z "$2"$'\t'
while zpty -r z line; do
  line=${line%%$'\r'*}
  [[ $line == '='* ]] && print -r -- ${line#=}
done
zpty -d z

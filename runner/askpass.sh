#!/bin/sh
# GIT_ASKPASS helper: git runs it with a prompt and reads the answer from stdout. The secret comes
# from the environment of that one git process, so it is never in a URL, an argument or a file.
#
# It answers only for the one repository it was given: PITCREW_GIT_URL (an https URL). Git runs
# with credential.useHttpPath=true, so its prompt names the whole URL:
#   "Username for 'https://github.com/acme/gitops.git': "
#   "Password for 'https://x-access-token@github.com/acme/gitops.git': "
# Anything else (another scheme, host, port or path, plain http, a redirect elsewhere) gets no
# answer and git fails, so a server that asks for credentials never receives them.

refuse() {
  echo "pitcrew askpass: $1; no credentials given" >&2
  exit 1
}

case "$1" in
  "Username for '"*"': ") what=username url=${1#"Username for '"} ;;
  "Password for '"*"': ") what=password url=${1#"Password for '"} ;;
  *) refuse "unexpected prompt" ;;
esac
url=${url%"': "}

case "$url" in
  https://*) ;;
  *) refuse "only https URLs get credentials" ;;
esac
rest=${url#https://}
authority=${rest%%/*}
path=${rest#"$authority"}
# The password prompt carries the username ("user@host"); the pinned URL has none.
host=${authority##*@}

[ -n "${PITCREW_GIT_URL:-}" ] || refuse "no repository is pinned (PITCREW_GIT_URL)"
[ "https://$host$path" = "$PITCREW_GIT_URL" ] || refuse "https://$host$path is not the GitOps repository"

if [ "$what" = username ]; then
  printf '%s\n' "${PITCREW_GIT_USERNAME:-x-access-token}"
else
  printf '%s\n' "${PITCREW_GIT_PASSWORD:-}"
fi

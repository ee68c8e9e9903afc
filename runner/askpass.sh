#!/bin/sh
# GIT_ASKPASS helper: git runs it with a prompt ("Username for 'https://github.com': " or
# "Password for 'https://x-access-token@github.com': ") and reads the answer from stdout. The secret
# comes from the environment of that one git process, so it is never in a URL, an argument or a file.
case "$1" in
  Username*) printf '%s\n' "${PITCREW_GIT_USERNAME:-x-access-token}" ;;
  *) printf '%s\n' "${PITCREW_GIT_PASSWORD:-}" ;;
esac

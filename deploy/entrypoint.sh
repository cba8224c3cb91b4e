#!/usr/bin/env bash
# The minimo container's entrypoint: refuse to start without the secrets the bundle needs,
# then run the command (by default `minimo serve`, see the Dockerfile).
#
# Required, none has a default (an empty value counts as missing):
#   MINIMO_S3_ENDPOINT, MINIMO_S3_ACCESS_KEY, MINIMO_S3_SECRET_KEY   the object store
#   MINIMO_MONGO_URI   mongodb://USER:PASSWORD@HOST:PORT/DATABASE?authSource=admin  (a password
#                      is required: an unauthenticated MongoDB is not a production store)
#   (the two S3 keys and the URI may instead be in the file that NAME_FILE names, as in
#   compose.yaml, which points them at the files its init service writes)
#   the Fernet key that encrypts S3 secrets at rest, either
#     - in the file MINIMO_SECRET_KEY_FILE (default /run/secrets/minimo_secret_key; compose.yaml
#       names /secrets/minimo/secret_key), or
#     - in MINIMO_SECRET_KEY (`docker run -e`): written to a private 0600 file, which
#       MINIMO_SECRET_KEY_FILE then names; the variable is removed from the environment.
#   Generate a key with:
#     python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'
#
# Every replica must get the same key (the S3 secrets in MongoDB are encrypted with it), which is
# why the key is never generated here: compose.yaml's one-shot init service makes it, once, for
# all replicas (deploy/init_secrets.py). Messages name variables, never their values.
# To run minimo without S3 and MongoDB (a single container on its embedded stores), bypass this
# script: docker run --entrypoint minimo IMAGE serve ...
set -euo pipefail

EX_CONFIG=78

die() {
    printf 'minimo: refusing to start: %s\n' "$*" >&2
    printf 'minimo: see docs/deploy.md (deploy/env.example lists every variable)\n' >&2
    exit "$EX_CONFIG"
}

blank() { [[ -z "${1//[[:space:]]/}" ]]; }

require() {
    local name="$1" hint="$2"
    if blank "${!name:-}"; then
        die "$name is empty or unset ($hint)"
    fi
}

# NAME_FILE names a file holding NAME (the bundle's init service writes them into the secrets
# volume): read it unless NAME itself is set, so `docker run -e NAME=...` still wins.
for name in MINIMO_S3_ACCESS_KEY MINIMO_S3_SECRET_KEY MINIMO_MONGO_URI; do
    file_var="${name}_FILE"
    file="${!file_var:-}"
    unset "$file_var"
    if blank "${!name:-}" && [[ -n "$file" ]]; then
        [[ -f "$file" && -r "$file" ]] || die "$file_var: $file is not a readable file for uid $(id -u)"
        value="$(tr -d '[:space:]' <"$file")"
        [[ -n "$value" ]] || die "$file_var: $file is empty"
        export "$name=$value"
    fi
done
unset name file_var file value

require MINIMO_S3_ENDPOINT "the S3 server's URL, e.g. http://minio:9000"
require MINIMO_S3_ACCESS_KEY "the S3 server's access key"
require MINIMO_S3_SECRET_KEY "the S3 server's secret key"
require MINIMO_MONGO_URI "mongodb://USER:PASSWORD@HOST:27017/minimo?authSource=admin"

# MINIMO_MONGO_URI must carry a password: mongodb[+srv]://USER:PASSWORD@HOSTS/...
mongo_uri="$MINIMO_MONGO_URI"
case "$mongo_uri" in
    mongodb://* | mongodb+srv://*) ;;
    *) die "MINIMO_MONGO_URI must start with mongodb:// or mongodb+srv://" ;;
esac
authority="${mongo_uri#*://}"
authority="${authority%%/*}"
authority="${authority%%\?*}"
if [[ "$authority" != *@* ]]; then
    die "MINIMO_MONGO_URI has no credentials (mongodb://USER:PASSWORD@HOST/...)"
fi
userinfo="${authority%@*}"
mongo_user="${userinfo%%:*}"
mongo_password=""
[[ "$userinfo" == *:* ]] && mongo_password="${userinfo#*:}"
blank "$mongo_user" && die "MINIMO_MONGO_URI has an empty user name"
blank "$mongo_password" && die "MINIMO_MONGO_URI has an empty password"
unset mongo_uri authority userinfo mongo_user mongo_password

# A Fernet key is 32 random bytes in URL-safe base64: 43 characters and one '='.
fernet_key_ok() { [[ "$1" =~ ^[A-Za-z0-9_-]{43}=$ ]]; }
key_hint="python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'"

if [[ -n "${MINIMO_SECRET_KEY+set}" ]]; then
    key="${MINIMO_SECRET_KEY//[[:space:]]/}"
    unset MINIMO_SECRET_KEY
    [[ -n "$key" ]] || die "MINIMO_SECRET_KEY is empty (make one with: $key_hint)"
    fernet_key_ok "$key" || die "MINIMO_SECRET_KEY is not a Fernet key (make one with: $key_hint)"
    key_dir="$(umask 077 && mktemp -d "${TMPDIR:-/tmp}/minimo-key.XXXXXX")"
    (umask 077 && printf '%s\n' "$key" >"$key_dir/secret.key")
    chmod 0600 "$key_dir/secret.key"
    export MINIMO_SECRET_KEY_FILE="$key_dir/secret.key"
    unset key key_dir
else
    key_file="${MINIMO_SECRET_KEY_FILE:-/run/secrets/minimo_secret_key}"
    [[ -e "$key_file" ]] || die "no secret key: $key_file does not exist and MINIMO_SECRET_KEY \
is unset (set MINIMO_SECRET_KEY for compose; make one with: $key_hint)"
    [[ -f "$key_file" && -r "$key_file" ]] || die "the secret key file $key_file is not a \
readable file for uid $(id -u)"
    key="$(tr -d '[:space:]' <"$key_file")"
    [[ -n "$key" ]] || die "the secret key file $key_file is empty (set MINIMO_SECRET_KEY)"
    fernet_key_ok "$key" || die "the secret key file $key_file does not hold a Fernet key \
(make one with: $key_hint)"
    export MINIMO_SECRET_KEY_FILE="$key_file"
    unset key key_file
fi

if [[ $# -eq 0 ]]; then
    set -- minimo serve
fi
exec "$@"

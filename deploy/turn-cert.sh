#!/bin/bash
# Gives coturn the certificate Caddy obtained for the domain (TURN over TLS on 5349):
# copies it to TURN_TLS_DIR, readable by the group turnserver, and tells coturn to
# reload it (SIGUSR2) when it changed. Run by sprechzimmer-turn-cert.service (timer:
# twice a day) and by deploy/install.sh.
#
#   SPRECHZIMMER_DOMAIN  the site's domain (from /etc/sprechzimmer/env)
#   CADDY_DATA_DIR       Caddy's storage (default: Debian's /var/lib/caddy/.local/share/caddy)
#   TURN_TLS_DIR         where coturn reads cert.pem and key.pem (/etc/sprechzimmer/turn-tls)
#   TURN_TLS_GROUP       the group that may read them (turnserver)
#   TURN_RELOAD          makes a running coturn re-read the files (SIGUSR2); "" for none
#   TURN_RESTART         restarts coturn: the first certificate opens its TLS port; "" for none
set -euo pipefail

domain="${SPRECHZIMMER_DOMAIN:?SPRECHZIMMER_DOMAIN is not set}"
data="${CADDY_DATA_DIR:-/var/lib/caddy/.local/share/caddy}"
target="${TURN_TLS_DIR:-/etc/sprechzimmer/turn-tls}"
group="${TURN_TLS_GROUP:-turnserver}"
reload="${TURN_RELOAD-systemctl kill --signal=USR2 coturn.service}"
restart="${TURN_RESTART-systemctl try-restart coturn.service}"

# Caddy keeps one folder per issuer (Let's Encrypt, ZeroSSL, its own CA); the newest
# certificate for the domain wins.
newest=""
for crt in "$data"/certificates/*/"$domain"/"$domain".crt; do
  [ -f "$crt" ] || continue
  if [ -z "$newest" ] || [ "$crt" -nt "$newest" ]; then
    newest="$crt"
  fi
done
if [ -z "$newest" ]; then
  echo "no certificate for $domain in $data yet (Caddy obtains it on the first https request);" \
       "coturn serves TURN over UDP/TCP meanwhile" >&2
  exit 0
fi
key="${newest%.crt}.key"

install -d -m 0750 -g "$group" "$target"
if cmp -s "$newest" "$target/cert.pem" && cmp -s "$key" "$target/key.pem"; then
  exit 0
fi
first=1
[ -f "$target/cert.pem" ] && first=0
install -m 0640 -g "$group" "$newest" "$target/cert.pem.new"
install -m 0640 -g "$group" "$key" "$target/key.pem.new"
mv -f "$target/cert.pem.new" "$target/cert.pem"
mv -f "$target/key.pem.new" "$target/key.pem"
echo "certificate for $domain updated from $newest"
# coturn opens its TLS port only if it found a certificate when it started; later it
# re-reads the files on SIGUSR2. Not running is fine: it reads them when it starts.
if [ "$first" = 1 ] && [ -n "$restart" ]; then
  $restart || true
elif [ "$first" = 0 ] && [ -n "$reload" ]; then
  $reload || true
fi

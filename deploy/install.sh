#!/bin/bash
# Sprechzimmer on one Debian 12 server: installs, or updates after `git pull`.
# `deploy/install.sh --help` says how (German and English).
set -euo pipefail
# bash 5.2 would read "&" in a ${var//pattern/replacement} as the matched text.
shopt -u patsub_replacement 2>/dev/null || true
umask 022

SOURCE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd /  # commands run as other users (postgres, sprechzimmer) start somewhere they may read
APP_DIR=/opt/sprechzimmer
ETC_DIR=/etc/sprechzimmer
ENV_FILE="$ETC_DIR/env"
TURN_TLS_DIR="$ETC_DIR/turn-tls"
STATE_DIR=/var/lib/sprechzimmer
BACKUP_DIR=/var/backups/sprechzimmer
SERVICE_USER=sprechzimmer
WRAPPER=/usr/local/sbin/sprechzimmer
WEB_PORT=5000
RELAY_UDP_PORT_MIN=40000
RELAY_UDP_PORT_MAX=40999
PACKAGES=(postgresql redis-server caddy coturn python3 python3-venv rsync ca-certificates iproute2)

usage() {
  cat <<'EOF'
Sprechzimmer auf einem Debian-12-Server installieren oder aktualisieren

  sudo deploy/install.sh --domain video.praxis-beispiel.de --email it@praxis-beispiel.de

Richtet ein: PostgreSQL, Redis, Caddy (HTTPS mit Let's Encrypt), coturn (TURN), den
Systembenutzer sprechzimmer, den Code in /opt/sprechzimmer mit venv, die Einstellungen
in /etc/sprechzimmer/env (Geheimnisse werden einmal erzeugt und bleiben), die
systemd-Dienste sprechzimmer-web, -outbox, -relay, tägliche Sicherungen; legt auf
Wunsch die erste Praxis an und prüft zum Schluss alles mit `sprechzimmer doctor`.
Erneut ausgeführt (z. B. nach `git pull`) ändert es nur, was sich geändert hat:
neuer Code, Pakete, Migrationen, Neustart. Vorher muss der DNS-Eintrag der Domain
auf diesen Server zeigen.

  --domain NAME     Domain der Videosprechstunde (keine IP-Adresse)      [Pflicht]
  --email ADRESSE   Kontakt für Let's Encrypt (Ablaufwarnungen)          [Pflicht]
  --public-ip IP    öffentliche Adresse, falls der Server hinter NAT steht
                    (sonst: die Adresse, auf die die Domain zeigt)
  --tls-internal    Zertifikat von Caddys eigener CA statt Let's Encrypt (Probe-
                    installation ohne öffentliches DNS; Browser warnen dann)
  --no-practice     nicht nach der ersten Praxis fragen
  -h, --help        diese Hilfe

Install or update Sprechzimmer on a Debian 12 server

  sudo deploy/install.sh --domain video.praxis-beispiel.de --email it@praxis-beispiel.de

Sets up PostgreSQL, Redis, Caddy (HTTPS from Let's Encrypt), coturn (TURN), the system
user sprechzimmer, the code in /opt/sprechzimmer with its venv, the settings in
/etc/sprechzimmer/env (secrets are generated once and kept), the systemd services
sprechzimmer-web, -outbox, -relay, daily backups; offers to create the first practice
and ends by checking everything with `sprechzimmer doctor`. Run again (e.g. after
`git pull`) it changes only what changed: new code, packages, migrations, restart.
The domain's DNS record must point at this server first.

  --domain NAME     the video consultation's domain (not an IP address)  [required]
  --email ADDRESS   contact for Let's Encrypt (expiry warnings)          [required]
  --public-ip IP    the public address when the server is behind NAT
                    (otherwise: the address the domain points at)
  --tls-internal    certificate from Caddy's own CA instead of Let's Encrypt (trial
                    install without public DNS; browsers warn)
  --no-practice     do not ask for the first practice
  -h, --help        this help
EOF
}

say() { printf '%s\n' "$*"; }
step() { printf '\n==> %s / %s\n' "$1" "$2"; }
die() {
  printf 'Fehler: %s\nError: %s\n' "$1" "$2" >&2
  [ "${3:-}" = usage ] && printf '\n(deploy/install.sh --help)\n' >&2
  exit 2
}

# -- arguments ---------------------------------------------------------------------------
domain="" email="" public_ip="" tls_internal=0 ask_practice=1
need_value() {
  if [ $# -lt 2 ] || [ -z "$2" ] || [ "${2#--}" != "$2" ]; then
    die "$1 braucht einen Wert." "$1 needs a value." usage
  fi
}
while [ $# -gt 0 ]; do
  case "$1" in
    --domain) need_value "$@"; domain="$2"; shift 2 ;;
    --domain=*) domain="${1#*=}"; shift ;;
    --email) need_value "$@"; email="$2"; shift 2 ;;
    --email=*) email="${1#*=}"; shift ;;
    --public-ip) need_value "$@"; public_ip="$2"; shift 2 ;;
    --public-ip=*) public_ip="${1#*=}"; shift ;;
    --tls-internal) tls_internal=1; shift ;;
    --no-practice) ask_practice=0; shift ;;
    -h | --help | --hilfe) usage; exit 0 ;;
    *) die "Unbekannte Option: $1" "unknown option: $1" usage ;;
  esac
done

is_ipv4() {
  local IFS=. part
  local -a parts
  [[ $1 =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || return 1
  read -r -a parts <<<"$1"
  for part in "${parts[@]}"; do [ "$part" -le 255 ] || return 1; done
}
is_private_ipv4() {
  [[ $1 =~ ^(10\.|127\.|192\.168\.|169\.254\.|172\.(1[6-9]|2[0-9]|3[01])\.|100\.(6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])\.) ]]
}

# -- checks: everything is looked at before anything is changed --------------------------
domain="${domain,,}"
[ -n "$domain" ] || die "--domain fehlt: unter welcher Domain soll die Videosprechstunde erreichbar sein?" \
  "--domain is missing: under which domain will the video consultation be reached?" usage
if is_ipv4 "$domain" || [[ $domain == *:* ]] || [[ $domain =~ ^[0-9.]+$ ]]; then
  die "--domain $domain ist eine IP-Adresse. HTTPS-Zertifikate (und damit Kamera und Mikrofon im Browser) gibt es nur für eine Domain: legen Sie einen DNS-Eintrag an (z. B. video.praxis-beispiel.de → diese IP) und geben Sie ihn an." \
    "--domain $domain is an IP address. HTTPS certificates (and so camera and microphone in the browser) need a domain: create a DNS record (e.g. video.praxis-beispiel.de → this IP) and give that." usage
fi
if ! [[ $domain =~ ^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$ ]] || [ ${#domain} -gt 253 ]; then
  die "--domain $domain ist kein gültiger Domainname (erwartet z. B. video.praxis-beispiel.de)." \
    "--domain $domain is not a valid domain name (expected e.g. video.praxis-beispiel.de)." usage
fi
if [ "$tls_internal" = 0 ] && [ -z "$email" ]; then
  die "--email fehlt: Let's Encrypt schickt dorthin Warnungen, bevor ein Zertifikat abläuft." \
    "--email is missing: Let's Encrypt sends warnings there before a certificate expires." usage
fi
if [ -n "$email" ] && ! [[ $email =~ ^[A-Za-z0-9._%+-]+@([A-Za-z0-9-]+\.)+[A-Za-z]{2,}$ ]]; then
  die "--email $email ist keine gültige E-Mail-Adresse." "--email $email is not a valid e-mail address." usage
fi
if [ -n "$public_ip" ] && ! is_ipv4 "$public_ip"; then
  die "--public-ip $public_ip ist keine IPv4-Adresse." "--public-ip $public_ip is not an IPv4 address." usage
fi
if [ "$(id -u)" != 0 ]; then
  die "Bitte als root ausführen: sudo $0 $*" "please run as root: sudo $0 $*"
fi
os_id="" os_version="" os_release="${SPRECHZIMMER_OS_RELEASE:-/etc/os-release}" # tests point it elsewhere
if [ -r "$os_release" ]; then
  # shellcheck source=/dev/null
  os_id="$(. "$os_release" && printf '%s' "${ID:-}")"
  # shellcheck source=/dev/null
  os_version="$(. "$os_release" && printf '%s' "${VERSION_ID:-}")"
fi
if [ "$os_id" != debian ] || [ "$os_version" != 12 ]; then
  die "Dieses Skript richtet Debian 12 (bookworm) ein; hier läuft ${os_id:-unbekannt} ${os_version}. Es wurde nichts verändert." \
    "this script sets up Debian 12 (bookworm); this is ${os_id:-unknown} ${os_version}. Nothing was changed."
fi
if [ ! -d /run/systemd/system ]; then
  die "systemd läuft hier nicht (Container ohne init?); die Dienste brauchen es. Es wurde nichts verändert." \
    "systemd is not running here (a container without init?); the services need it. Nothing was changed."
fi
for file in requirements.txt wsgi.py config.py deploy/Caddyfile deploy/turnserver.conf deploy/turn-cert.sh \
  deploy/systemd/sprechzimmer-web.service; do
  [ -f "$SOURCE_DIR/$file" ] || die "$SOURCE_DIR ist kein vollständiger Sprechzimmer-Checkout ($file fehlt)." \
    "$SOURCE_DIR is not a complete Sprechzimmer checkout ($file is missing)."
done
env_value() { # KEY [file]: the value in the settings file, quotes removed ("" if absent)
  local file="${2:-$ENV_FILE}" line value
  [ -f "$file" ] || return 0
  line="$(grep -E "^$1=" "$file" | tail -n 1 || true)"
  value="${line#*=}"
  value="${value%\"}"; value="${value#\"}"
  printf '%s' "$value"
}
installed_domain="$(env_value SPRECHZIMMER_DOMAIN)"
if [ -n "$installed_domain" ] && [ "$installed_domain" != "$domain" ]; then
  die "Hier ist Sprechzimmer schon für $installed_domain eingerichtet. Eine neue Domain: SPRECHZIMMER_DOMAIN, PUBLIC_BASE_URL, ICE_STUN_URLS und TURN_URLS in $ENV_FILE ändern, dann erneut mit --domain $domain." \
    "Sprechzimmer is already set up here for $installed_domain. For a new domain: change SPRECHZIMMER_DOMAIN, PUBLIC_BASE_URL, ICE_STUN_URLS and TURN_URLS in $ENV_FILE, then run again with --domain $domain."
fi

# The server's own address: where the kernel would send from (a route lookup, no packet
# leaves), else the first global address.
bind_ip="$(env_value RELAY_BIND_IP)"
if [ -z "$bind_ip" ]; then
  if command -v ip >/dev/null; then
    bind_ip="$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n 1)"
  fi
  if [ -z "$bind_ip" ]; then
    bind_ip="$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9.]+$' | grep -v '^127\.' | head -n 1 || true)"
  fi
  [ -n "$bind_ip" ] || die "Die IPv4-Adresse dieses Servers ist nicht zu ermitteln (keine Default-Route?)." \
    "cannot tell this server's IPv4 address (no default route?)."
fi
resolved_ip="$(getent ahostsv4 "$domain" 2>/dev/null | awk 'NR == 1 { print $1 }' || true)"
if [ -z "$public_ip" ]; then
  public_ip="$(env_value RELAY_PUBLIC_IP)"
fi
dns_note=""
if [ -z "$public_ip" ]; then
  if [ -n "$resolved_ip" ] && { [ "$resolved_ip" = "$bind_ip" ] || is_private_ipv4 "$bind_ip"; }; then
    public_ip="$resolved_ip"
  else
    public_ip="$bind_ip"
  fi
fi
if [ -z "$resolved_ip" ]; then
  dns_note="$domain löst (noch) nicht auf: ohne DNS-Eintrag auf $public_ip gibt es kein Zertifikat. / $domain does not resolve (yet): without a DNS record pointing at $public_ip there is no certificate."
elif [ "$resolved_ip" != "$public_ip" ]; then
  dns_note="$domain zeigt auf $resolved_ip, dieser Server ist $public_ip. / $domain points at $resolved_ip, this server is $public_ip."
fi

# -- from here on, changes ---------------------------------------------------------------
exec 9>/run/sprechzimmer-install.lock
flock -n 9 || die "install.sh läuft schon." "install.sh is already running."

changed_code=0 changed_env=0 changed_units=0 changed_any=0
note_change() { changed_any=1; say "    geändert / changed: $*"; }

step "Debian-Pakete" "Debian packages"
missing=()
for package in "${PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${db:Status-Abbrev}' "$package" 2>/dev/null || true)"
  [ "${status:0:2}" = ii ] || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  # Packages do not start their services with Debian's defaults (coturn's would be an
  # open relay for a moment): they start below, once configured.
  own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ "$own_policy" = 1 ]; then
    rm -f /usr/sbin/policy-rc.d
    trap - EXIT
  fi
  note_change "${missing[*]}"
else
  say "    vorhanden / present: ${PACKAGES[*]}"
fi

step "Systembenutzer und Ordner" "system user and folders"
if ! getent passwd "$SERVICE_USER" >/dev/null; then
  useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
  note_change "user $SERVICE_USER"
fi
ensure_dir() { # path mode owner group
  if [ ! -d "$1" ] || [ "$(stat -c '%a %U %G' "$1")" != "$2 $3 $4" ]; then
    install -d -m "$2" -o "$3" -g "$4" "$1"
    note_change "$1"
  fi
}
ensure_dir "$STATE_DIR" 750 "$SERVICE_USER" "$SERVICE_USER"
ensure_dir "$BACKUP_DIR" 700 "$SERVICE_USER" "$SERVICE_USER"
ensure_dir "$ETC_DIR" 755 root root
ensure_dir "$TURN_TLS_DIR" 750 root turnserver
ensure_dir "$APP_DIR" 755 root root

step "Code nach $APP_DIR" "code to $APP_DIR"
if [ "$SOURCE_DIR" != "$APP_DIR" ]; then
  # Owned by root, read-only for the services; the venv, compiled translations and
  # the instance link live only here and are left alone.
  sync_log="$(rsync -rlptog --omit-dir-times --delete --chown=root:root --chmod=go-w --itemize-changes \
    --exclude=/.git/ --exclude=/.venv/ --exclude=/instance --exclude=__pycache__/ --exclude='*.pyc' \
    --exclude='*.mo' --exclude=/.pytest_cache/ --exclude=/bench/out/ --exclude=/.ci/ \
    "$SOURCE_DIR/" "$APP_DIR/")"
  if [ -n "$sync_log" ]; then
    changed_code=1
    note_change "$(printf '%s\n' "$sync_log" | wc -l) Dateien / files"
  else
    say "    unverändert / unchanged"
  fi
fi
if [ "$(readlink "$APP_DIR/instance" || true)" != "$STATE_DIR" ]; then
  rm -rf "$APP_DIR/instance"
  ln -s "$STATE_DIR" "$APP_DIR/instance"
  note_change "$APP_DIR/instance → $STATE_DIR"
fi

step "Python-Umgebung" "Python environment"
if [ ! -x "$APP_DIR/.venv/bin/python" ]; then
  python3 -m venv "$APP_DIR/.venv"
  note_change "venv"
fi
wanted="$(cat "$APP_DIR/requirements.txt" <(python3 --version) | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$APP_DIR/.venv/.sprechzimmer-requirements" 2>/dev/null || true)" != "$wanted" ]; then
  "$APP_DIR/.venv/bin/pip" install -q --disable-pip-version-check -r "$APP_DIR/requirements.txt"
  printf '%s\n' "$wanted" >"$APP_DIR/.venv/.sprechzimmer-requirements"
  changed_code=1
  note_change "requirements.txt"
else
  say "    unverändert / unchanged"
fi
if [ "$changed_code" = 1 ] || ! compgen -G "$APP_DIR/translations/*/LC_MESSAGES/messages.mo" >/dev/null; then
  if ! compiled="$("$APP_DIR/.venv/bin/pybabel" compile -d "$APP_DIR/translations" 2>&1)"; then
    printf '%s\n' "$compiled" >&2
    die "Die Übersetzungen lassen sich nicht kompilieren." "the translations do not compile."
  fi
  "$APP_DIR/.venv/bin/python" -m compileall -q "$APP_DIR/app" "$APP_DIR/media_relay" "$APP_DIR/config.py" \
    "$APP_DIR/wsgi.py" >/dev/null
fi

step "Einstellungen in $ENV_FILE" "settings in $ENV_FILE"
secret() { python3 -c 'import secrets; print(secrets.token_hex(32))'; }
turn_urls="turn:$domain:3478?transport=udp,turn:$domain:3478?transport=tcp,turns:$domain:5349?transport=tcp"
if [ "$tls_internal" = 1 ]; then
  # Caddy's own CA is trusted by no browser's TURN client: TURN over TLS left out.
  turn_urls="turn:$domain:3478?transport=udp,turn:$domain:3478?transport=tcp"
fi
if [ ! -f "$ENV_FILE" ]; then
  (
    umask 077
    cat >"$ENV_FILE" <<EOF
# Sprechzimmer settings (README "Configuration"), read by the services and by
# \`sprechzimmer <command>\`. After a change: systemctl restart sprechzimmer.target
# deploy/install.sh added what was missing; it never changes a line that is here.

# E-mail for the invitations (required): fill in, remove the "#", restart.
# MAIL_SERVER=smtp.ihr-anbieter.de
# MAIL_PORT=587
# MAIL_USE_TLS=true
# MAIL_USERNAME=termine@praxis-beispiel.de
# MAIL_PASSWORD=
# MAIL_DEFAULT_SENDER="Praxis Dr. Muster <termine@praxis-beispiel.de>"
# The operator of this install (required; README "Configuration"): named on the Impressum,
# the Datenschutzerklärung and in every e-mail. Lines are separated by "|".
# OPERATOR_NAME="Praxisdienste Muster GmbH"
# OPERATOR_ADDRESS="Hauptstraße 1|12345 Musterstadt"
# OPERATOR_EMAIL=kontakt@praxis-beispiel.de
# OPERATOR_PHONE="+49 30 1234567"
# OPERATOR_REPRESENTATIVE="Dr. Maria Muster (Geschäftsführerin)"
# OPERATOR_REGISTER="Amtsgericht Musterstadt HRB 12345"
# OPERATOR_VAT_ID=DE123456789
# OPERATOR_DPO="Max Datenschutz|datenschutz@praxis-beispiel.de"

# SMS (optional, tariffs Standard and Premium):
# VONAGE_API_KEY=
# VONAGE_API_SECRET=
# VONAGE_SMS_FROM=Praxis
EOF
  )
  note_change "$ENV_FILE"
fi
set_default() { # KEY VALUE: appended only when the file has no KEY yet
  if ! grep -qE "^$1=" "$ENV_FILE"; then
    printf '%s=%s\n' "$1" "$2" >>"$ENV_FILE"
    changed_env=1
    note_change "$1"
  fi
}
set_default SPRECHZIMMER_ENV production
set_default SPRECHZIMMER_DOMAIN "$domain"
set_default PUBLIC_BASE_URL "https://$domain"
set_default SECRET_KEY "$(secret)"
set_default RELAY_SECRET "$(secret)"
set_default TURN_SECRET "$(secret)"
set_default DATABASE_URL "postgresql+psycopg://$SERVICE_USER@/$SERVICE_USER?host=/var/run/postgresql"
set_default HUB_URL "redis://127.0.0.1:6379/0"
set_default RATELIMIT_STORAGE_URI "redis://127.0.0.1:6379/1"
set_default FORWARDED_ALLOW_IPS "127.0.0.1,::1"
set_default RELAY_BIND_IP "$bind_ip"
set_default RELAY_PUBLIC_IP "$public_ip"
set_default RELAY_UDP_PORT_MIN "$RELAY_UDP_PORT_MIN"
set_default RELAY_UDP_PORT_MAX "$RELAY_UDP_PORT_MAX"
set_default ICE_STUN_URLS "stun:$domain:3478"
set_default TURN_URLS "$turn_urls"
set_default OUTBOX_DIR "$STATE_DIR/outbox"
set_default BACKUP_DIR "$BACKUP_DIR"
chown root:root "$ENV_FILE"
chmod 600 "$ENV_FILE"
[ "$changed_env" = 1 ] || say "    unverändert / unchanged"
# A production start without the operator's data stops (app/legal): say so now, not as
# a service that keeps failing.
missing_operator=""
for key in OPERATOR_NAME OPERATOR_ADDRESS OPERATOR_EMAIL OPERATOR_DPO; do
  grep -qE "^$key=.+" "$ENV_FILE" || missing_operator="$missing_operator $key"
done
[ -z "$missing_operator" ] || die \
  "In $ENV_FILE fehlen die Angaben zum Betreiber für Impressum und Datenschutzerklärung:$missing_operator. Bitte eintragen (Vorlage in der Datei, \"#\" entfernen) und install.sh erneut ausführen." \
  "$ENV_FILE lacks the operator's data for the legal pages:$missing_operator. Fill them in (template in the file, remove the \"#\") and run install.sh again."

step "PostgreSQL und Redis" "PostgreSQL and Redis"
systemctl enable --now --quiet postgresql redis-server
# Calls and their ring deadlines live in Redis (HUB_URL): with its append log they outlive
# a Redis restart (README "Redis"); Debian's default keeps only hourly snapshots.
for _ in $(seq 30); do
  [ "$(redis-cli ping 2>/dev/null)" = PONG ] && break
  sleep 1
done
if [ "$(redis-cli --raw CONFIG GET appendonly | tail -n 1)" != yes ]; then
  redis-cli CONFIG SET appendonly yes >/dev/null
  redis-cli CONFIG SET appendfsync everysec >/dev/null
  redis-cli CONFIG REWRITE >/dev/null
  note_change "Redis appendonly"
fi
for _ in $(seq 60); do
  runuser -u postgres -- pg_isready -q && break
  sleep 1
done
psql_postgres() { runuser -u postgres -- psql -XtAq -d postgres -c "$1"; }
if [ "$(psql_postgres "SELECT 1 FROM pg_roles WHERE rolname = '$SERVICE_USER'")" != 1 ]; then
  runuser -u postgres -- createuser "$SERVICE_USER"
  note_change "PostgreSQL role $SERVICE_USER"
fi
if [ "$(psql_postgres "SELECT 1 FROM pg_database WHERE datname = '$SERVICE_USER'")" != 1 ]; then
  runuser -u postgres -- createdb --owner="$SERVICE_USER" --encoding=UTF8 "$SERVICE_USER"
  note_change "PostgreSQL database $SERVICE_USER"
fi

# Writes $2 (a rendered text) to $1 when it differs; returns 0 when it wrote.
write_if_changed() { # path content mode owner group
  if [ -f "$1" ] && [ "$(cat "$1")" = "$2" ] && [ "$(stat -c '%a %U %G' "$1")" = "$3 $4 $5" ]; then
    return 1
  fi
  install -m "$3" -o "$4" -g "$5" /dev/null "$1.new"
  printf '%s\n' "$2" >"$1.new"
  mv -f "$1.new" "$1"
  note_change "$1"
}
# deploy/<template> with every @NAME@ replaced; a placeholder without a value stops here.
render() { # template NAME=value...
  local text pair
  text="$(cat "$SOURCE_DIR/deploy/$1")"
  shift
  for pair in "$@"; do
    text="${text//@${pair%%=*}@/${pair#*=}}"
  done
  if [[ $text =~ @[A-Z][A-Z_]*@ ]]; then
    die "Platzhalter ${BASH_REMATCH[0]} ohne Wert." "placeholder ${BASH_REMATCH[0]} has no value."
  fi
  printf '%s' "$text"
}

step "coturn (TURN)" "coturn (TURN)"
external_ip="$public_ip"
[ "$public_ip" != "$bind_ip" ] && external_ip="$public_ip/$bind_ip"
turn_conf="$(render turnserver.conf LISTEN_IP="$bind_ip" EXTERNAL_IP="$external_ip" DOMAIN="$domain" \
  TURN_SECRET="$(env_value TURN_SECRET)" TLS_DIR="$TURN_TLS_DIR")"
changed_turn=0
write_if_changed /etc/turnserver.conf "$turn_conf" 640 root turnserver && changed_turn=1
[ "$changed_turn" = 1 ] || say "    unverändert / unchanged"

step "Caddy (HTTPS)" "Caddy (HTTPS)"
acme="$email"
[ "$tls_internal" = 1 ] && acme=internal
# Several web processes (docs/scaling.md): WEB_UPSTREAMS in the env file lists them.
upstreams="$(env_value WEB_UPSTREAMS)"
[ -n "$upstreams" ] || upstreams="127.0.0.1:$WEB_PORT"
caddyfile="$(render Caddyfile DOMAIN="$domain" ACME_EMAIL="$acme" APP_DIR="$APP_DIR" \
  WEB_UPSTREAMS="$upstreams" \
  ACCESS_LOG=/var/log/caddy/sprechzimmer-access.log)"
if [ -f /etc/caddy/Caddyfile ] && [ ! -f /etc/caddy/Caddyfile.debian ] && ! grep -q Sprechzimmer /etc/caddy/Caddyfile; then
  cp -p /etc/caddy/Caddyfile /etc/caddy/Caddyfile.debian
fi
changed_caddy=0
write_if_changed /etc/caddy/Caddyfile "$caddyfile" 644 root root && changed_caddy=1
[ "$changed_caddy" = 1 ] || say "    unverändert / unchanged"
# As the user Caddy runs as: files it opens (the access log) must stay its own.
runuser -u caddy -- caddy validate --config /etc/caddy/Caddyfile --adapter caddyfile >/dev/null 2>&1 ||
  die "Caddy lehnt /etc/caddy/Caddyfile ab (caddy validate --config /etc/caddy/Caddyfile)." \
    "Caddy refuses /etc/caddy/Caddyfile (caddy validate --config /etc/caddy/Caddyfile)."

step "systemd-Dienste" "systemd services"
for unit in "$SOURCE_DIR"/deploy/systemd/*; do
  write_if_changed "/etc/systemd/system/$(basename "$unit")" "$(cat "$unit")" 644 root root && changed_units=1
done
wrapper="$(cat <<EOF
#!/bin/bash
# sprechzimmer <flask command>: runs the app's command line (flask doctor, backup,
# restore, practice create, db upgrade, ...) as the service user with the settings of
# $ENV_FILE. Written by deploy/install.sh.
set -euo pipefail
[ "\$(id -u)" = 0 ] || { echo "sprechzimmer: bitte als root / please run as root (sudo)" >&2; exit 1; }
while IFS= read -r line || [ -n "\$line" ]; do
  case "\$line" in ''|'#'*) continue ;; esac
  key="\${line%%=*}" value="\${line#*=}"
  case "\$value" in \\"*\\") value="\${value:1:\${#value}-2}" ;; \\'*\\') value="\${value:1:\${#value}-2}" ;; esac
  export "\$key=\$value"
done <"$ENV_FILE"
export FLASK_APP=wsgi.py SPRECHZIMMER_ENV_FILE="$ENV_FILE"
cd "$APP_DIR"
exec runuser -u "$SERVICE_USER" -- "$APP_DIR/.venv/bin/flask" "\$@"
EOF
)"
write_if_changed "$WRAPPER" "$wrapper" 755 root root || true
if [ "$changed_units" = 1 ]; then
  systemctl daemon-reload
fi
systemctl enable --quiet sprechzimmer.target sprechzimmer-web.service sprechzimmer-outbox.service \
  sprechzimmer-relay.service sprechzimmer-backup.timer sprechzimmer-turn-cert.timer coturn.service caddy.service
[ "$changed_units" = 1 ] || say "    unverändert / unchanged"

step "Datenbank-Migrationen" "database migrations"
migrations="$("$WRAPPER" db upgrade 2>&1)" || { printf '%s\n' "$migrations" >&2; die "flask db upgrade schlug fehl." "flask db upgrade failed."; }
applied="$(printf '%s\n' "$migrations" | grep -c 'Running upgrade' || true)"
if [ "$applied" -gt 0 ]; then
  note_change "$applied Migration(en)"
else
  say "    auf dem neuesten Stand / up to date"
fi

step "Dienste starten" "starting services"
if [ "$changed_code" = 1 ] || [ "$changed_env" = 1 ] || [ "$changed_units" = 1 ] || [ "$applied" -gt 0 ]; then
  systemctl restart sprechzimmer.target
  say "    sprechzimmer.target neu gestartet / restarted"
else
  systemctl start sprechzimmer.target
fi
systemctl start sprechzimmer-backup.timer sprechzimmer-turn-cert.timer
if [ "$changed_turn" = 1 ]; then systemctl restart coturn; else systemctl start coturn; fi
if [ "$changed_caddy" = 1 ] && systemctl is-active --quiet caddy; then
  systemctl reload caddy
else
  systemctl start caddy
fi
# coturn's TLS certificate comes from Caddy: wait a moment for Caddy's first one.
for _ in $(seq 30); do
  compgen -G "/var/lib/caddy/.local/share/caddy/certificates/*/$domain/$domain.crt" >/dev/null && break
  sleep 2
done
systemctl start sprechzimmer-turn-cert.service || true
for port in "$WEB_PORT" 5100; do
  for _ in $(seq 60); do
    (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.5
  done
done
for service in sprechzimmer-web sprechzimmer-outbox sprechzimmer-relay coturn caddy postgresql redis-server; do
  systemctl is-active --quiet "$service" || say "    WARNUNG / WARNING: $service läuft nicht / is not running (journalctl -u $service)"
done

if [ "$ask_practice" = 1 ] && [ -z "$("$WRAPPER" practice list 2>/dev/null)" ]; then
  step "Erste Praxis" "first practice"
  if [ -t 0 ]; then
    read -r -p "Jetzt die erste Praxis anlegen? / Create the first practice now? [J/n] " answer
    if [[ ! ${answer:-j} =~ ^[nN] ]]; then
      read -r -p "Name der Praxis / practice name: " practice_name
      read -r -p "Tarif / tariff (basis, standard, premium) [basis]: " tariff
      read -r -p "E-Mail der ersten Person (Anmeldung) / first staff member's e-mail (login): " staff_email
      read -r -p "Name der Person / staff member's name: " staff_name
      "$WRAPPER" practice create --name "$practice_name" --tariff "${tariff:-basis}" --email "$staff_email" \
        --staff-name "$staff_name" || say "    Nicht angelegt; später / not created; later: sprechzimmer practice create --help"
    fi
  else
    say "    Später / later: sprechzimmer practice create --name \"Praxis …\" --tariff basis --email … --staff-name …"
  fi
fi

step "Prüfung" "check"
doctor_lang=de
[[ ${LANG:-} == en* ]] && doctor_lang=en
"$WRAPPER" doctor --lang "$doctor_lang" || true

step "Fertig" "done"
[ "$changed_any" = 1 ] || say "Nichts geändert. / Nothing changed."
[ -n "$dns_note" ] && say "WARNUNG / WARNING: $dns_note"
cat <<EOF
Adresse / address:        https://$domain
Einstellungen / settings: $ENV_FILE  (danach / then: systemctl restart sprechzimmer.target)
Befehle / commands:       sprechzimmer doctor | backup | restore --latest | practice create …
Sicherungen / backups:    $BACKUP_DIR (täglich / daily, sprechzimmer-backup.timer)
Firewall – eingehend öffnen / open inbound:
  TCP 80, 443          Caddy (HTTPS, Let's Encrypt)
  UDP 443              Caddy (HTTP/3, optional)
  TCP+UDP 3478         coturn (STUN/TURN)
  TCP 5349             coturn (TURN über TLS / over TLS)
  UDP 49160-49999      coturn (weitergeleitete Medien / relayed media)
  UDP $RELAY_UDP_PORT_MIN-$RELAY_UDP_PORT_MAX      Medienserver für Gruppenanrufe / media relay for group calls
EOF

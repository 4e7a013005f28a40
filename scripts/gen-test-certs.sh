#!/bin/sh
# Test certificates for tests/auth.rs (TLS and mTLS round trips). Not for production: the keys are
# in the repository. Valid for 100 years so the suite never starts failing on a date.
#
#   scripts/gen-test-certs.sh [tests/data/tls]
#
# ca.pem          a test CA (signs the server and client certificates below)
# server.pem/.key localhost + 127.0.0.1 (serverAuth)
# acme-analyst.pem/.key   client, SAN DNS acme-analyst.clients.wfl (mapped by cert_name)
# stranger.pem/.key       client, SAN DNS stranger.clients.wfl (signed by the CA, in no tokens file)
# rogue-ca.pem, rogue.pem/.key   a client certificate from another CA (refused at the handshake)
set -eu
out=${1:-tests/data/tls}
mkdir -p "$out"
cd "$out"
days=36500
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() { # name subject
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -sha256 -days $days -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$1.pem"
}
leaf() { # name ca subject san eku
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$3" -out "$1.csr"
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n' "$5" "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -sha256 -days $days \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
ca ca "wfl test CA"
leaf server ca "localhost" "DNS:localhost,IP:127.0.0.1" serverAuth
leaf acme-analyst ca "acme-analyst" "DNS:acme-analyst.clients.wfl" clientAuth
leaf stranger ca "stranger" "DNS:stranger.clients.wfl" clientAuth
ca rogue-ca "rogue CA"
leaf rogue rogue-ca "acme-analyst" "DNS:acme-analyst.clients.wfl" clientAuth
rm -f ./*.srl ca.key rogue-ca.key

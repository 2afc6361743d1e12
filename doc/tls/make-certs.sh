#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Makes a CA, a controller certificate and node certificates for mutual TLS
# on the agent link (README "Mutual TLS"); run it in an empty folder.
set -e
# The fleet's CA (keep ca.key offline).
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc \
  -keyout ca.key -out ca.crt -days 3650 -subj "/CN=BlueChi fleet CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"

# sign NAME EXTENSIONS: a key and a certificate signed by the CA
sign() {
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc \
    -keyout "$1.key" -out "$1.csr" -subj "/CN=$1"
  printf '%s\n' "$2" "keyUsage=critical,digitalSignature" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -days 825 \
    -extfile "$1.ext" -out "$1.crt"
  rm "$1.csr" "$1.ext"
}

# The controller: it must carry the name or address the agents connect to
# (ControllerHost, or TLSServerName when set).
sign controller "subjectAltName=DNS:controller.example.org,IP:127.0.0.1
extendedKeyUsage=serverAuth"

# One per node: the DNS SAN is the node name it may register as.
for node in ${NODES:-laptop server}; do
  sign "$node" "subjectAltName=DNS:$node
extendedKeyUsage=clientAuth"
done
